/** hf_****abcd: enough to tell two tokens apart, never enough to use one. */
export function maskToken(token: string): string {
  if (token.length < 12) return "****";
  const prefix = token.startsWith("hf_") ? "hf_" : "";
  return `${prefix}****${token.slice(-4)}`;
}
