#!/usr/bin/env bash
# The servers the integration tests start on loopback, from Debian packages (root, apt-get):
#   slurmctld slurmd slurm-client munge  a one-node Slurm cluster (test/slurm/cluster.ts)
#   openssh-server openssh-client rsync  two SSH hosts on 127.0.0.2/127.0.0.3 (test/ssh/hosts.ts)
#   docker.io                            dockerd, containerd, runc, docker-init: a private Docker daemon (test/container/docker-daemon.ts)
# Idempotent: installs only what is missing. `make test` (and so .ci/run) runs it.
set -euo pipefail

packages=()
need() { # need <command or file> <package>
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "$1" ]; then packages+=("$2"); fi
}
need /usr/sbin/slurmctld slurmctld
need /usr/sbin/slurmd slurmd
need sbatch slurm-client
need /usr/sbin/munged munge
need /usr/sbin/sshd openssh-server
need ssh openssh-client
need ssh-keygen openssh-client
need rsync rsync
need /usr/sbin/dockerd docker.io
need /usr/bin/docker-init docker.io
need setpriv util-linux

if [ "${#packages[@]}" -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-servers: ${packages[*]} missing; run as root (apt-get install -y ${packages[*]})" >&2
  exit 1
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
