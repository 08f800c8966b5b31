/** The Hub base URL: $HF_ENDPOINT (as huggingface_hub reads it), else https://huggingface.co. */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  const endpoint = env.HF_ENDPOINT?.trim() || "https://huggingface.co";
  return endpoint.replace(/\/+$/, "");
}
