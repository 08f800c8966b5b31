/**
 * "did you mean `alpha`?" for misspelled keys and enum values. Optimal-string-alignment distance
 * over a handful of short names: too small a need for a dependency.
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * What people coming from peft's LoraConfig, the HF Trainer or lit-llama write for our keys: too far
 * from ours by spelling to be found as typos, and the most common mistake of all.
 */
const FOREIGN_NAMES: Record<string, string> = {
  lora_r: "r",
  rank: "r",
  lora_rank: "r",
  lora_alpha: "alpha",
  lora_dropout: "dropout",
  learning_rate: "lr",
  num_epochs: "epochs",
  num_train_epochs: "epochs",
  per_device_train_batch_size: "micro_batch_size",
  gradient_accumulation_steps: "batch_size",
  warmup: "warmup_steps",
  eval_steps: "every_steps",
  save_steps: "every_steps",
  save_total_limit: "keep_last",
  model_name_or_path: "base",
  torch_dtype: "dtype",
  attn_implementation: "attn",
  max_seq_length: "max_length",
  cutoff_len: "max_length",
  adapter_length: "adapter_len",
};

/** The candidate closest to `word`, if it is close enough to be a plausible typo. */
/** Longer words are no typo of any name here (the longest is under 30 characters); bounds the cost. */
const MAX_WORD_LENGTH = 64;

export function nearestName(word: string, candidates: Iterable<string>): string | undefined {
  if (word.length > MAX_WORD_LENGTH) return undefined;
  const lower = word.toLowerCase();
  const names = [...candidates];
  const ours = FOREIGN_NAMES[lower];
  if (ours !== undefined && names.includes(ours)) return ours;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of names) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (best === undefined) return undefined;
  // A typo changes a few characters: 1 in a name of up to 4, 2 up to 7, 3 beyond.
  const length = Math.max(word.length, best.length);
  const limit = length <= 4 ? 1 : length <= 7 ? 2 : 3;
  const prefixMatch = best.toLowerCase().startsWith(lower) || lower.startsWith(best.toLowerCase());
  return bestDistance <= limit || (prefixMatch && Math.min(lower.length, best.length) >= 3) ? best : undefined;
}

export function didYouMean(word: string, candidates: Iterable<string>): string {
  const nearest = nearestName(word, candidates);
  return nearest === undefined ? "" : ` (did you mean \`${nearest}\`?)`;
}
