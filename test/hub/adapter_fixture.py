"""Real tiny peft adapters for the Hub tests, and greedy generation through PeftModel.

  save <adapter_dir> <base_dir>     build a random tiny LLaMA (saved to base_dir), wrap it in LoRA with
                                    non-zero B matrices, save the adapter and a tokenizer to adapter_dir
  generate <base_dir> <adapter_dir> load base + PeftModel.from_pretrained(adapter_dir), greedy tokens
  generate-job <job.json> <adapter_dir>
                                    the same for a run trained by the shim: its built-in base rebuilt
                                    from the adapter's tokenizer (tokens with and without the adapter)

Each prints one JSON object on stdout.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

PROMPT_IDS = [1, 5, 9, 12, 7]
NEW_TOKENS = 12


def greedy(model: torch.nn.Module, prompt_ids: list[int]) -> list[int]:
    model.eval()
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=0,
        )
    return out[0, len(prompt_ids):].tolist()


def save(adapter_dir: Path, base_dir: Path) -> dict:
    from peft import LoraConfig, get_peft_model
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    base = LlamaForCausalLM(config)
    base.save_pretrained(base_dir)
    base_tokens = greedy(base, PROMPT_IDS)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():  # B starts at zero: make the adapter change the outputs
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 2.0)
    model.save_pretrained(adapter_dir)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{f"w{i}": i for i in range(4, 64)}}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(adapter_dir)
    # base_tokens lets a test check that the adapter matters: loading without it would not match.
    return {"tokens": greedy(model, PROMPT_IDS), "base_tokens": base_tokens}


def generate(base_dir: Path, adapter_dir: Path) -> dict:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir)
    return {"tokens": greedy(PeftModel.from_pretrained(base, adapter_dir), PROMPT_IDS)}


def generate_job(job_file: Path, adapter_dir: Path) -> dict:
    """A shim-trained run: its built-in base rebuilt from the adapter's tokenizer and the fixed seed."""
    from peft import PeftModel
    from transformers import PreTrainedTokenizerFast

    from peftshim.model import build_builtin_model, resolve_dtype

    job = json.loads(job_file.read_text())
    device = torch.device("cpu")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(adapter_dir)
    base = build_builtin_model(job["model"]["base"], tokenizer, device=device,
                               dtype=resolve_dtype(job["model"]["dtype"], device), attn=job["model"]["attn"])
    prompt = tokenizer("User: I feel stressed about work.\nAssistant:")["input_ids"]
    base_tokens = greedy(base, prompt)  # before PeftModel wraps (and changes) the base in place
    return {"tokens": greedy(PeftModel.from_pretrained(base, adapter_dir), prompt), "base_tokens": base_tokens}


def main(argv: list[str]) -> int:
    command, *args = argv
    if command == "save":
        result = save(Path(args[0]), Path(args[1]))
    elif command == "generate":
        result = generate(Path(args[0]), Path(args[1]))
    elif command == "generate-job":
        result = generate_job(Path(args[0]), Path(args[1]))
    else:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
