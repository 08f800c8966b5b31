import { createHash } from "node:crypto";

/**
 * The two ids the Hub lists for a file: the sha256 (the LFS oid of large files) and the git blob
 * oid (sha1 of "blob <size>\0" + content, the oid of regular files). One read computes both.
 */
export async function fileOids(content: Blob): Promise<{ sha256: string; gitOid: string }> {
  const sha256 = createHash("sha256");
  const sha1 = createHash("sha1");
  sha1.update(`blob ${content.size}\0`);
  const reader = content.stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    sha256.update(value);
    sha1.update(value);
  }
  return { sha256: sha256.digest("hex"), gitOid: sha1.digest("hex") };
}
