"""The correction to gpu_packing.py, on a CPU: do restarting position_ids alone isolate packed examples?

Two random sequences A and B packed as [A;B] with position_ids restarting at B, no attention mask, on
a small fp32 LLaMA; B's logits should equal B run alone if the examples are isolated. The GPU script
ran the model with its default use_cache=True, under which transformers builds a cache even in
training and then skips the per-example mask it derives from restarting position_ids. HF Trainer
runs with use_cache=False. Run: .venv/bin/python bench/anchors/cpu_packing_use_cache.py
"""
import torch
from transformers import LlamaConfig, LlamaForCausalLM

torch.manual_seed(0)
config = LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=4)
a = torch.randint(0, 1000, (1, 37))
b = torch.randint(0, 1000, (1, 53))
packed = torch.cat([a, b], 1)
positions = torch.cat([torch.arange(37), torch.arange(53)]).unsqueeze(0)
for attn in ("eager", "sdpa"):
    config._attn_implementation = attn
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for use_cache in (True, False):
            alone = model(input_ids=b, use_cache=use_cache).logits
            inside = model(input_ids=packed, position_ids=positions, use_cache=use_cache).logits[:, 37:]
            print(f"{attn:5s} use_cache={use_cache!s:5s} max|packed - alone| = {(inside - alone).abs().max().item():.2e}")
