/**
 * A local Hugging Face Hub for tests: node:http on 127.0.0.1 (random port) speaking the routes
 * @huggingface/hub calls for a push and a download: whoami-v2, repos/create, model info, preupload,
 * the LFS batch API (basic transfer, PUT target on this server), the NDJSON commit route, tree
 * listing (paged with a Link header), commit listing, resolve (with Range) and branch creation.
 * It checks Bearer tokens, keeps repos in memory (commits with oids and parents per branch), and
 * injects faults on a chosen route for its next N calls.
 */
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export type Route =
  | "whoami"
  | "create-repo"
  | "repo-info"
  | "preupload"
  | "lfs-batch"
  | "lfs-upload"
  | "commit"
  | "tree"
  | "commits"
  | "resolve"
  | "branch";

export type Fault =
  | { kind: "status"; status: number; retryAfterS?: number }
  | { kind: "hang" }
  | { kind: "reset" }
  /** Handle the request (state changes included), then drop the connection instead of answering. */
  | { kind: "drop-response" }
  /** Handle the request, send the status line, headers and half the body, then go silent with the connection open. */
  | { kind: "stall-body" };

export type EmulatorUser = { token: string; name: string; orgs?: string[]; role?: "read" | "write" };

type StoredFile = { content: Buffer; gitOid: string; lfs?: { oid: string; size: number; pointerSize: number } };
type Commit = { oid: string; parents: string[]; title: string; message: string; date: string; files: Map<string, StoredFile> };
type Repo = { name: string; private: boolean; branches: Map<string, string>; commits: Map<string, Commit>; lfs: Map<string, Buffer> };
type Reply = { status: number; headers?: Record<string, string>; body?: string | Buffer };
type Request = { method: string; url: URL; headers: http.IncomingHttpHeaders; body: Buffer; user: EmulatorUser | undefined };

const LFS_PATTERNS = /\.(safetensors|bin|pt|pth|ckpt|h5|msgpack|onnx|model|zip|gz|tar|npy|npz|pkl|pickle|parquet|arrow)$/;
const LFS_SIZE = 10 * 1024 * 1024;
const GITATTRIBUTES = "*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n";

function gitBlobOid(content: Buffer): string {
  return createHash("sha1").update(`blob ${content.length}\0`).update(content).digest("hex");
}

function sha256(content: Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

function storedFile(content: Buffer, lfs: boolean): StoredFile {
  if (!lfs) return { content, gitOid: gitBlobOid(content) };
  const oid = sha256(content);
  const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${content.length}\n`);
  return { content, gitOid: gitBlobOid(pointer), lfs: { oid, size: content.length, pointerSize: pointer.length } };
}

function json(status: number, value: unknown, headers: Record<string, string> = {}): Reply {
  return { status, headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(value) };
}

function error(status: number, message: string, code?: string): Reply {
  return json(status, { error: message }, code ? { "X-Error-Code": code } : {});
}

export class HubEmulator {
  readonly requests: Array<{ method: string; route: Route | "unknown"; path: string; status: number | "dropped" | "hung" }> = [];
  /** Entries per tree page; small values exercise the client's pagination. */
  treePageSize = 1000;
  private readonly repos = new Map<string, Repo>();
  private readonly faults = new Map<Route, Array<{ fault: Fault; remaining: number }>>();
  private readonly users: EmulatorUser[];
  private server: http.Server | undefined;
  private base = "";
  private commitCounter = 0;

  constructor(users: EmulatorUser[]) {
    this.users = users;
  }

  get url(): string {
    return this.base;
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.base;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  /** The next `times` calls of `route` get `fault` instead of (or, for drop-response and stall-body, after) their handling. */
  inject(route: Route, fault: Fault, times = 1): void {
    const queue = this.faults.get(route) ?? [];
    queue.push({ fault, remaining: times });
    this.faults.set(route, queue);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  hasRepo(name: string): boolean {
    return this.repos.has(name);
  }

  isPrivate(name: string): boolean {
    return this.requireRepo(name).private;
  }

  branches(name: string): string[] {
    return [...this.requireRepo(name).branches.keys()].sort();
  }

  /** Commit oids of a branch, newest first, following first parents. */
  history(name: string, branch = "main"): Array<{ oid: string; parents: string[]; title: string }> {
    const repo = this.requireRepo(name);
    const out: Array<{ oid: string; parents: string[]; title: string }> = [];
    let oid = repo.branches.get(branch);
    while (oid) {
      const commit = repo.commits.get(oid)!;
      out.push({ oid: commit.oid, parents: commit.parents, title: commit.title });
      oid = commit.parents[0];
    }
    return out;
  }

  /** The files of a branch head: path -> content. */
  files(name: string, branch = "main"): Map<string, Buffer> {
    const repo = this.requireRepo(name);
    const head = repo.commits.get(repo.branches.get(branch) ?? "");
    return new Map([...(head?.files ?? new Map<string, StoredFile>()).entries()].map(([path, file]) => [path, file.content]));
  }

  /** Every byte the emulator holds for a repo (files of all commits, LFS objects), for secret scans. */
  allStoredBytes(name: string): Buffer {
    const repo = this.requireRepo(name);
    const parts: Buffer[] = [...repo.lfs.values()];
    for (const commit of repo.commits.values()) {
      parts.push(Buffer.from(`${commit.title}\n${commit.message}\n`));
      for (const file of commit.files.values()) parts.push(file.content);
    }
    return Buffer.concat(parts);
  }

  private requireRepo(name: string): Repo {
    const repo = this.repos.get(name);
    if (!repo) throw new Error(`emulator: no repo ${name}`);
    return repo;
  }

  private takeFault(route: Route): Fault | undefined {
    const queue = this.faults.get(route);
    const head = queue?.[0];
    if (!head) return undefined;
    head.remaining -= 1;
    if (head.remaining <= 0) queue!.shift();
    return head.fault;
  }

  private route(method: string, path: string): { route: Route; params: string[] } | undefined {
    const table: Array<[string, RegExp, Route]> = [
      ["GET", /^\/api\/whoami-v2$/, "whoami"],
      ["POST", /^\/api\/repos\/create$/, "create-repo"],
      ["GET", /^\/api\/models\/([^/]+\/[^/]+)(?:\/revision\/([^/]+))?$/, "repo-info"],
      ["POST", /^\/api\/models\/([^/]+\/[^/]+)\/preupload\/([^/]+)$/, "preupload"],
      ["POST", /^\/([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/, "lfs-batch"],
      ["PUT", /^\/lfs-upload\/([^/]+\/[^/]+)\/([0-9a-f]{64})$/, "lfs-upload"],
      ["POST", /^\/api\/models\/([^/]+\/[^/]+)\/commit\/([^/]+)$/, "commit"],
      ["GET", /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)(?:\/(.*))?$/, "tree"],
      ["GET", /^\/api\/models\/([^/]+\/[^/]+)\/commits\/([^/]+)$/, "commits"],
      ["GET", /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/, "resolve"],
      ["POST", /^\/api\/models\/([^/]+\/[^/]+)\/branch\/([^/]+)$/, "branch"],
    ];
    for (const [m, pattern, route] of table) {
      const match = method === m ? pattern.exec(path) : null;
      if (match) return { route, params: match.slice(1).map((p) => (p === undefined ? "" : decodeURIComponent(p))) };
    }
    return undefined;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.base);
    const method = req.method ?? "GET";
    const matched = this.route(method, url.pathname);
    const log = { method, route: matched?.route ?? ("unknown" as const), path: url.pathname, status: 0 as number | "dropped" | "hung" };
    this.requests.push(log);
    const fault = matched ? this.takeFault(matched.route) : undefined;
    if (fault?.kind === "hang") {
      log.status = "hung";
      return; // never answered: the client's timeout has to notice
    }
    if (fault?.kind === "reset") {
      log.status = "dropped";
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    let reply: Reply;
    if (fault?.kind === "status") {
      reply = error(fault.status, `injected ${fault.status}`);
      if (fault.retryAfterS !== undefined) reply.headers = { ...reply.headers, "Retry-After": String(fault.retryAfterS) };
    } else if (!matched) {
      reply = error(404, `emulator: no route for ${method} ${url.pathname}`);
    } else {
      const auth = req.headers.authorization;
      const user = auth?.startsWith("Bearer ") ? this.users.find((u) => u.token === auth.slice("Bearer ".length)) : undefined;
      // The LFS PUT target is a pre-signed storage URL: no Authorization header, like S3.
      if (matched.route !== "lfs-upload" && !user) {
        reply = error(401, auth ? "Invalid credentials in Authorization header" : "Authorization header is missing");
      } else {
        try {
          reply = this.dispatch(matched.route, matched.params, { method, url, headers: req.headers, body, user });
        } catch (caught) {
          reply = error(500, `emulator: ${caught instanceof Error ? caught.message : String(caught)}`);
        }
      }
    }
    if (fault?.kind === "drop-response") {
      log.status = "dropped";
      req.socket.destroy();
      return;
    }
    if (fault?.kind === "stall-body") {
      log.status = "hung";
      const body = Buffer.from(reply.body ?? "");
      res.writeHead(reply.status, { ...reply.headers, "Content-Length": String(body.length) });
      res.write(body.subarray(0, Math.floor(body.length / 2)));
      return; // the rest never comes: a client that stops timing out once headers arrive waits forever
    }
    log.status = reply.status;
    res.writeHead(reply.status, reply.headers ?? {});
    res.end(reply.body);
  }

  private canWrite(user: EmulatorUser | undefined, namespace: string): boolean {
    return !!user && user.role !== "read" && (user.name === namespace || (user.orgs ?? []).includes(namespace));
  }

  private canRead(user: EmulatorUser | undefined, repo: Repo): boolean {
    const namespace = repo.name.split("/")[0]!;
    return !repo.private || (!!user && (user.name === namespace || (user.orgs ?? []).includes(namespace)));
  }

  /** The repo a request names, or the reply that says why it cannot have it. */
  private access(name: string, user: EmulatorUser | undefined, write: boolean): Repo | Reply {
    const repo = this.repos.get(name);
    if (!repo || !this.canRead(user, repo)) return error(404, "Repository not found", "RepoNotFound");
    if (write && !this.canWrite(user, name.split("/")[0]!)) return error(403, `You don't have the rights to write to ${name}`);
    return repo;
  }

  private resolveRev(repo: Repo, rev: string): Commit | undefined {
    const oid = repo.branches.get(rev) ?? (repo.commits.has(rev) ? rev : undefined);
    return oid ? repo.commits.get(oid) : undefined;
  }

  private addCommit(repo: Repo, branch: string, title: string, message: string, files: Map<string, StoredFile>): Commit {
    const parent = repo.branches.get(branch);
    const oid = createHash("sha1")
      .update(`${parent ?? ""}\n${title}\n${++this.commitCounter}\n${randomBytes(8).toString("hex")}`)
      .digest("hex");
    const commit: Commit = { oid, parents: parent ? [parent] : [], title, message, date: new Date().toISOString(), files };
    repo.commits.set(oid, commit);
    repo.branches.set(branch, oid);
    return commit;
  }

  private dispatch(route: Route, params: string[], request: Request): Reply {
    const { user } = request;
    switch (route) {
      case "whoami":
        return json(200, {
          type: "user",
          id: `id-${user!.name}`,
          name: user!.name,
          fullname: user!.name,
          orgs: (user!.orgs ?? []).map((org) => ({ type: "org", name: org })),
          auth: { type: "access_token", accessToken: { displayName: "test", role: user!.role ?? "write", createdAt: new Date().toISOString() } },
        });
      case "create-repo": {
        const payload = JSON.parse(request.body.toString("utf8")) as { name: string; organization?: string; visibility?: string; type?: string };
        const namespace = payload.organization ?? user!.name;
        const name = `${namespace}/${payload.name}`;
        if (payload.type !== undefined && payload.type !== "model") return error(400, "emulator: only model repos");
        if (!this.canWrite(user, namespace)) return error(403, `You don't have the rights to create a repo under ${namespace}`);
        if (this.repos.has(name)) return json(409, { error: "You already created this model repo", url: `${this.base}/${name}` });
        const repo: Repo = { name, private: payload.visibility !== "public", branches: new Map(), commits: new Map(), lfs: new Map() };
        this.repos.set(name, repo);
        this.addCommit(repo, "main", "initial commit", "", new Map([[".gitattributes", storedFile(Buffer.from(GITATTRIBUTES), false)]]));
        return json(200, { url: `${this.base}/${name}`, name, id: name });
      }
      case "repo-info": {
        const repo = this.access(params[0]!, user, false);
        if (!("branches" in repo)) return repo;
        const head = this.resolveRev(repo, params[1] || "main");
        if (!head) return error(404, `Invalid rev id: ${params[1]}`, "RevisionNotFound");
        return json(200, {
          _id: `id-${repo.name}`,
          id: repo.name,
          private: repo.private,
          sha: head.oid,
          downloads: 0,
          likes: 0,
          gated: false,
          tags: [],
          siblings: [...head.files.keys()].map((rfilename) => ({ rfilename })),
          lastModified: head.date,
        });
      }
      case "preupload": {
        const repo = this.access(params[0]!, user, true);
        if (!("branches" in repo)) return repo;
        const payload = JSON.parse(request.body.toString("utf8")) as { files: Array<{ path: string; size: number; sample: string }> };
        return json(200, {
          files: payload.files.map((file) => {
            const binary = Buffer.from(file.sample, "base64").includes(0);
            return { path: file.path, uploadMode: LFS_PATTERNS.test(file.path) || file.size >= LFS_SIZE || binary ? "lfs" : "regular" };
          }),
        });
      }
      case "lfs-batch": {
        const repo = this.access(params[0]!, user, true);
        if (!("branches" in repo)) return repo;
        const payload = JSON.parse(request.body.toString("utf8")) as { operation: string; transfers?: string[]; objects: Array<{ oid: string; size: number }> };
        if (payload.operation !== "upload" || !(payload.transfers ?? ["basic"]).includes("basic")) return error(422, "emulator: basic uploads only");
        return json(
          200,
          {
            transfer: "basic",
            objects: payload.objects.map((object) =>
              repo.lfs.has(object.oid)
                ? { oid: object.oid, size: object.size }
                : { oid: object.oid, size: object.size, authenticated: true, actions: { upload: { href: `${this.base}/lfs-upload/${repo.name}/${object.oid}`, expires_in: 3600 } } },
            ),
          },
          { "Content-Type": "application/vnd.git-lfs+json" },
        );
      }
      case "lfs-upload": {
        const repo = this.repos.get(params[0]!);
        if (!repo) return error(404, "no such repo");
        if (sha256(request.body) !== params[1]) return error(400, "uploaded content does not match its sha256");
        repo.lfs.set(params[1]!, request.body);
        return { status: 200, headers: { ETag: `"${params[1]}"` } };
      }
      case "commit":
        return this.commit(params[0]!, params[1]!, request);
      case "tree": {
        const repo = this.access(params[0]!, user, false);
        if (!("branches" in repo)) return repo;
        const head = this.resolveRev(repo, params[1]!);
        if (!head) return error(404, `Invalid rev id: ${params[1]}`, "RevisionNotFound");
        const prefix = params[2] ? `${params[2].replace(/\/$/, "")}/` : "";
        const recursive = request.url.searchParams.get("recursive") === "true";
        const entries = new Map<string, object>();
        for (const [path, file] of head.files) {
          if (!path.startsWith(prefix)) continue;
          const rest = path.slice(prefix.length).split("/");
          for (let depth = 1; depth < rest.length; depth++) {
            if (!recursive && depth > 1) break;
            const dir = prefix + rest.slice(0, depth).join("/");
            entries.set(dir, { type: "directory", path: dir, size: 0, oid: createHash("sha1").update(dir).digest("hex") });
          }
          if (recursive || rest.length === 1) {
            entries.set(path, { type: "file", path, size: file.lfs?.size ?? file.content.length, oid: file.gitOid, ...(file.lfs ? { lfs: file.lfs } : {}) });
          }
        }
        const all = [...entries.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([, entry]) => entry);
        const start = Number(request.url.searchParams.get("cursor") ?? 0);
        const page = all.slice(start, start + this.treePageSize);
        const headers: Record<string, string> = {};
        if (start + this.treePageSize < all.length) {
          const next = new URL(request.url.href);
          next.searchParams.set("cursor", String(start + this.treePageSize));
          headers.Link = `<${next.href}>; rel="next"`;
        }
        return json(200, page, headers);
      }
      case "commits": {
        const repo = this.access(params[0]!, user, false);
        if (!("branches" in repo)) return repo;
        if (!this.resolveRev(repo, params[1]!)) return error(404, `Invalid rev id: ${params[1]}`, "RevisionNotFound");
        const limit = Number(request.url.searchParams.get("limit") ?? 100);
        const out: object[] = [];
        let oid: string | undefined = this.resolveRev(repo, params[1]!)!.oid;
        while (oid && out.length < limit) {
          const commit: Commit = repo.commits.get(oid)!;
          out.push({ id: commit.oid, title: commit.title, message: commit.message, authors: [{ user: "peftctl", avatar: "" }], date: commit.date });
          oid = commit.parents[0];
        }
        return json(200, out);
      }
      case "resolve": {
        const repo = this.access(params[0]!, user, false);
        if (!("branches" in repo)) return repo;
        const head = this.resolveRev(repo, params[1]!);
        if (!head) return error(404, `Invalid rev id: ${params[1]}`, "RevisionNotFound");
        const file = head.files.get(params[2]!);
        if (!file) return error(404, `Entry not found: ${params[2]}`, "EntryNotFound");
        const headers: Record<string, string> = {
          "Content-Type": "application/octet-stream",
          "Accept-Ranges": "bytes",
          ETag: `"${file.lfs?.oid ?? file.gitOid}"`,
          "X-Repo-Commit": head.oid,
          ...(file.lfs ? { "X-Linked-ETag": `"${file.lfs.oid}"`, "X-Linked-Size": String(file.lfs.size) } : {}),
        };
        const range = /^bytes=(\d+)-(\d*)$/.exec(String(request.headers.range ?? ""));
        if (!range) return { status: 200, headers, body: file.content };
        const size = file.content.length;
        const from = Number(range[1]);
        const to = Math.min(range[2] ? Number(range[2]) : size - 1, size - 1);
        if (from >= size && size > 0) return { status: 416, headers: { "Content-Range": `bytes */${size}` } };
        return { status: 206, headers: { ...headers, "Content-Range": `bytes ${from}-${Math.max(from, to)}/${size}` }, body: file.content.subarray(from, to + 1) };
      }
      case "branch": {
        const repo = this.access(params[0]!, user, true);
        if (!("branches" in repo)) return repo;
        const payload = JSON.parse(request.body.toString("utf8") || "{}") as { startingPoint?: string; emptyBranch?: boolean; overwrite?: boolean };
        const branch = params[1]!;
        if (repo.branches.has(branch) && !payload.overwrite) return error(409, `Reference already exists: refs/heads/${branch}`);
        if (payload.emptyBranch) return error(400, "emulator: empty branches are not supported");
        const from = this.resolveRev(repo, payload.startingPoint ?? "main");
        if (!from) return error(404, `Invalid rev id: ${payload.startingPoint}`, "RevisionNotFound");
        repo.branches.set(branch, from.oid);
        return json(200, {});
      }
    }
  }

  private commit(name: string, branch: string, request: Request): Reply {
    const repo = this.access(name, request.user, true);
    if (!("branches" in repo)) return repo;
    const headOid = repo.branches.get(branch);
    if (!headOid) return error(404, `Invalid rev id: ${branch}`, "RevisionNotFound");
    const lines = request.body
      .toString("utf8")
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as { key: string; value: Record<string, unknown> });
    const header = lines.find((line) => line.key === "header")?.value as { summary?: string; description?: string; parentCommit?: string } | undefined;
    if (!header?.summary) return error(400, "commit header with a summary is required");
    if (header.parentCommit && header.parentCommit !== headOid) {
      return error(412, "A commit has happened since. Please refresh and try again.");
    }
    // Applied to a copy and swapped in at the end: a commit lands whole or not at all.
    const files = new Map(repo.commits.get(headOid)!.files);
    for (const { key, value } of lines) {
      if (key === "file") {
        const content = Buffer.from(String(value.content), value.encoding === "base64" ? "base64" : "utf8");
        files.set(String(value.path), storedFile(content, false));
      } else if (key === "lfsFile") {
        const content = repo.lfs.get(String(value.oid));
        if (!content || content.length !== value.size) return error(422, `LFS object ${String(value.oid)} for ${String(value.path)} was never uploaded`);
        files.set(String(value.path), storedFile(content, true));
      } else if (key === "deletedFile") {
        files.delete(String(value.path));
      } else if (key !== "header") {
        return error(400, `unknown commit operation ${key}`);
      }
    }
    const commit = this.addCommit(repo, branch, header.summary, header.description ?? "", files);
    return json(200, { success: true, commitOid: commit.oid, commitUrl: `${this.base}/${name}/commit/${commit.oid}`, hookOutput: "" });
  }
}
