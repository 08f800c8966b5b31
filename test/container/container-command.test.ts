/**
 * The container wrapper (src/launch/container.ts) as a pure function, and the shell prelude it
 * builds run by a real `sh`. The `docker` and `apptainer` here are recording scripts on PATH: a unit
 * test of the argv and environment the wrapper hands over, NOT a test that containers work (that is
 * docker-run.test.ts, against a real dockerd). Also: resources.container in the config, run ids
 * without it unchanged, and a Slurm batch script around the wrapped command.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { containerCommand, containerKillArgv, containerMounts, PASSED_BY_NAME, passedByName, type ContainerLaunch, type ContainerSettings } from "../../src/launch/container.ts";
import { batchScript } from "../../src/launch/slurm/script.ts";
import { diagnosticsOf, fixture, MINIMAL } from "../config/helpers.ts";

const docker: ContainerSettings = { image: "peftshim-gpu:1", runtime: "docker", python: "python", mounts: ["/data/hf-cache:/cache"], extra_args: ["--shm-size=8g"] };
const apptainer: ContainerSettings = { ...docker, runtime: "apptainer", image: "/images/peftshim.sif", extra_args: [] };
const job = {
  run_id: "smoke-r-8-abc123",
  run_dir: "/runs/smoke/smoke-r-8-abc123",
  data: { path: "/data/sets/extes.json" },
  eval: { data: { path: "/data/other/esconv.json" } },
  model: { base: "/models/llama-7b" },
};
const torchrun = { file: "/host/venv/bin/python", args: ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "peftshim", "train", "--job", `${job.run_dir}/job.json`, "--attempt", "1"] };
const single = { file: "/host/venv/bin/python", args: ["-m", "peftshim", "train", "--job", `${job.run_dir}/job.json`, "--attempt", "3", "--resume"] };

function launch(overrides: Partial<ContainerLaunch> = {}): ContainerLaunch {
  return { command: torchrun, container: docker, job, gpus: { ids: ["2", "3"] }, env: { PEFTCTL_NPROC: "2" }, passEnv: PASSED_BY_NAME, ...overrides };
}

/** Runs the wrapped command line with recording `docker` / `apptainer` scripts first on PATH: what they were given. */
function recorded(command: { file: string; args: string[] }, env: Record<string, string> = {}): { argv: string[]; env: Record<string, string> } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-fake-runtime-"));
  for (const tool of ["docker", "apptainer"]) {
    const script = path.join(dir, tool);
    writeFileSync(script, `#!/usr/bin/env python3\nimport json, os, sys\njson.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, open(${JSON.stringify(path.join(dir, "out.json"))}, "w"))\n`);
    chmodSync(script, 0o755);
  }
  execFileSync(command.file, command.args, { env: { PATH: `${dir}:${process.env.PATH}`, ...env } });
  return JSON.parse(readFileSync(path.join(dir, "out.json"), "utf8")) as { argv: string[]; env: Record<string, string> };
}

describe("docker run around the shim's command line", () => {
  test("the same argv after the image's python, the run's name, --init, the GPUs renumbered inside, the invoking user from the shell", () => {
    const { argv, env } = recorded(containerCommand(launch()), { HF_TOKEN: "hf_secret_value" });
    const uid = process.getuid!();
    const gid = process.getgid!();
    expect(argv.slice(0, 7)).toEqual(["run", "--user", `${uid}:${gid}`, "--rm", "--init", "--name", "peftctl-smoke-r-8-abc123"]);
    const image = argv.indexOf("peftshim-gpu:1");
    // The entrypoint is the image's Python; what follows the image is shimCommand's argv unchanged (torchrun included).
    expect(argv.slice(image - 2, image)).toEqual(["--entrypoint", "python"]);
    expect(argv.slice(image + 1)).toEqual(torchrun.args);
    expect(argv).toContain("--shm-size=8g");
    const after = (flag: string) => argv.flatMap((word, i) => (word === flag ? [argv[i + 1]!] : []));
    expect(after("--gpus")).toEqual(['"device=2,3"']);
    expect(after("--ipc")).toEqual(["host"]);
    expect(after("--workdir")).toEqual([job.run_dir]);
    expect(after("-e")).toEqual(expect.arrayContaining(["CUDA_VISIBLE_DEVICES=0,1", "PEFTCTL_NPROC=2", "HOME=/tmp", "HF_TOKEN", "WANDB_API_KEY"]));
    // The token passes by name: docker reads it from its own environment; no argument holds it.
    expect(argv.join(" ")).not.toContain("hf_secret_value");
    expect(env.HF_TOKEN).toBe("hf_secret_value");
    expect(after("--mount")).toEqual([
      "type=bind,source=/data/sets,target=/data/sets,readonly",
      "type=bind,source=/data/other,target=/data/other,readonly",
      "type=bind,source=/models/llama-7b,target=/models/llama-7b,readonly",
      "type=bind,source=/data/hf-cache,target=/cache",
      `type=bind,source=${job.run_dir},target=${job.run_dir}`,
    ]);
  });

  test("a CPU job gets no GPU and an empty CUDA_VISIBLE_DEVICES; no --ipc without torchrun; a path with a comma is quoted for --mount's CSV", () => {
    const command = containerCommand(launch({ command: single, gpus: { ids: [] }, job: { ...job, data: { path: "/data/a,b/x.json" }, eval: null, model: { base: "builtin:tiny-llama" } } }));
    const { argv } = recorded(command);
    expect(argv).not.toContain("--gpus");
    expect(argv).not.toContain("--ipc");
    expect(argv).toContain("CUDA_VISIBLE_DEVICES=");
    expect(argv).toContain('type=bind,"source=/data/a,b","target=/data/a,b",readonly');
    expect(argv.slice(-single.args.length)).toEqual(single.args);
  });

  test("on Slurm the node's GPUs come at run time: --gpus all and CUDA_VISIBLE_DEVICES by name", () => {
    const { argv, env } = recorded(containerCommand(launch({ gpus: { inherit: 2 } })), { CUDA_VISIBLE_DEVICES: "5,7" });
    expect(argv[argv.indexOf("--gpus") + 1]).toBe("all");
    expect(argv).toContain("CUDA_VISIBLE_DEVICES");
    expect(env.CUDA_VISIBLE_DEVICES).toBe("5,7");
  });

  test("simulated GPU ids (PEFTCTL_FAKE_GPUS) ask docker for no GPU and keep their ids", () => {
    const { argv } = recorded(containerCommand(launch({ simulatedGpus: true })));
    expect(argv).not.toContain("--gpus");
    expect(argv).toContain("CUDA_VISIBLE_DEVICES=2,3");
  });

  test("a user mount on the run dir's path cannot make it read-only; the run dir is mounted last", () => {
    const mounts = containerMounts({ container: { ...docker, mounts: [`${job.run_dir}:${job.run_dir}:ro`, "/runs:/runs:ro"] }, job });
    expect(mounts.at(-1)).toEqual({ source: job.run_dir, target: job.run_dir, readOnly: false });
    expect(mounts.filter((m) => m.target === job.run_dir)).toHaveLength(1);
  });

  test("an hf:// dataset is not mounted (it is read from the Hub or its cache inside); tracker variables pass by name", () => {
    const hub = { ...job, data: { path: "hf://datasets/org/name" }, eval: {} };
    expect(containerMounts({ container: { ...docker, mounts: [] }, job: hub }).map((m) => m.target)).toEqual(["/models/llama-7b", job.run_dir]);
    const names = passedByName({ WANDB_PROJECT: "p", MLFLOW_TRACKING_PASSWORD: "secret", HOME: "/root" });
    expect(names).toEqual([...PASSED_BY_NAME, "MLFLOW_TRACKING_PASSWORD", "WANDB_PROJECT"]);
    const { args } = containerCommand(launch({ passEnv: names }));
    expect(args).toContain("MLFLOW_TRACKING_PASSWORD");
    expect(args.join(" ")).not.toContain("secret");
  });

  test("a SIGKILL goes to the container by its name; apptainer's processes are the job's own", () => {
    expect(containerKillArgv(docker, job.run_id, "SIGKILL")).toEqual(["kill", "--signal", "KILL", "peftctl-smoke-r-8-abc123"]);
    expect(containerKillArgv(docker, job.run_id, "SIGKILL", "generate")).toEqual(["kill", "--signal", "KILL", "peftctl-smoke-r-8-abc123-generate"]);
    expect(containerKillArgv(apptainer, job.run_id, "SIGKILL")).toBeNull();
  });
});

describe("apptainer exec around the shim's command line (its command line only: apptainer is not in Debian, so no real run here)", () => {
  test("--cleanenv, --nv with the host's ids, binds at the same paths, the image's python; secrets by APPTAINERENV_ only", () => {
    const { argv, env } = recorded(containerCommand(launch({ container: apptainer })), { HF_TOKEN: "hf_secret_value", PYTHONPATH: "/host/python" });
    expect(argv.slice(0, 3)).toEqual(["exec", "--cleanenv", "--nv"]);
    const image = argv.indexOf("/images/peftshim.sif");
    expect(argv.slice(image + 1)).toEqual(["python", ...torchrun.args]);
    const after = (flag: string) => argv.flatMap((word, i) => (word === flag ? [argv[i + 1]!] : []));
    expect(after("--bind")).toEqual(["/data/sets:/data/sets:ro", "/data/other:/data/other:ro", "/models/llama-7b:/models/llama-7b:ro", "/data/hf-cache:/cache", `${job.run_dir}:${job.run_dir}`]);
    expect(after("--pwd")).toEqual([job.run_dir]);
    expect(after("--env")).toEqual(expect.arrayContaining(["CUDA_VISIBLE_DEVICES=2,3", "PEFTCTL_NPROC=2"]));
    expect(argv.join(" ")).not.toContain("hf_secret_value");
    expect(env.APPTAINERENV_HF_TOKEN).toBe("hf_secret_value");
    // A variable that is not set is not made up empty.
    expect(env.APPTAINERENV_WANDB_API_KEY).toBeUndefined();
  });
});

describe("a Slurm batch script around the wrapped command", () => {
  test("the attempt counts up and --resume is appended after the shim's own arguments", () => {
    const command = containerCommand(launch({ gpus: { inherit: 2 } }));
    const script = batchScript({ runDir: job.run_dir, command, token: "t", processes: 2, gpus: 2 });
    const execLine = script.split("\n").find((line) => line.startsWith("exec "))!;
    expect(execLine).toMatch(/^exec sh -c /);
    expect(execLine).toContain('--attempt "$attempt" ${resume[@]+"${resume[@]}"}');
    expect(execLine).not.toMatch(/HF_TOKEN=/);
    execFileSync("bash", ["-n"], { input: script });
  });
});

describe("resources.container in the config", () => {
  async function errorsOf(text: string): Promise<string[]> {
    return diagnosticsOf(await fixture({ "a.yaml": text }), "a.yaml");
  }
  test("a relative mount, an unknown runtime and a misspelt key are positioned errors; a full block is valid", async () => {
    expect(await errorsOf(`${MINIMAL}resources:\n  container: { image: x, mounts: [cache:/cache] }\n`)).toEqual([expect.stringMatching(/^<dir>\/a\.yaml:10:35: resources\.container\.mounts\[0\]: expected HOST:CONTAINER/)]);
    expect(await errorsOf(`${MINIMAL}resources:\n  container: { image: x, runtime: podman }\n`)).toEqual([expect.stringMatching(/resources\.container\.runtime/)]);
    expect(await errorsOf(`${MINIMAL}resources:\n  container: { image: x, mount: [] }\n`)).toEqual([expect.stringMatching(/unknown key `mount` \(did you mean `mounts`\?\)/)]);
    expect(await errorsOf(`${MINIMAL}resources:\n  container: { image: peftshim-gpu, runtime: apptainer, mounts: ["/data/hf:/cache", "/models:/models:ro"], extra_args: [--shm-size=8g] }\n`)).toEqual([]);
  });
});

describe("peftctl hosts check with a container", () => {
  test("the host's Python and its library versions are not checked: the image brings them", async () => {
    const { hostProblems } = await import("../../src/launch/ssh/hosts-report.ts");
    const inventory = { host: "gpu-a", reachable: true, error: null, workdir: "/w", gpus: [], gpuNames: [], cpuSlots: 1, versions: {}, pythonError: "python3: not found" };
    const report = { inventory, slots: 1, slotKind: "cpu slots" as const, freeSlots: 1, mismatches: [{ library: "torch", host: null, required: "2.13.0" }] };
    expect(hostProblems([report])).toEqual(["gpu-a: python cannot report versions", "gpu-a: torch missing != 2.13.0"]);
    expect(hostProblems([report], { checkPython: false })).toEqual([]);
    expect(hostProblems([{ ...report, inventory: { ...inventory, reachable: false } }], { checkPython: false })).toEqual(["gpu-a does not answer"]);
  });
});
