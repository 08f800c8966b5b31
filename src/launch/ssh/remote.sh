#!/bin/sh
# peftctl's agent on an SSH host, copied there with the shim's code (src/launch/ssh/sync.ts) and run
# over ssh by the SSH executor. POSIX sh and coreutils only, so a host needs nothing but a Python
# with the shim's requirements.
#
#   remote.sh start DIR -- ARGV...   start ARGV detached in DIR; prints "started PID START_TIME EVENTS_SIZE"
#   remote.sh status PID START DIR   prints "running", "exited CODE" or "gone" (died without an exit code)
#   remote.sh signal PID START SIG   signals the job's process group; prints "sent" or "not-running"
#
# A job is identified by its pid and start time (/proc/<pid>/stat field 22), so a reused pid is
# never signalled. The job runs under `setsid` in its own session and process group, leader `sh`,
# which ignores SIGHUP (a dropped connection does not stop it) and catches TERM/INT only to survive
# them while the shim checkpoints: it then writes the shim's exit code to DIR/exit_code (temp file +
# rename), which is how a controller learns how a job ended that it did not start, or lost sight of.
set -u

start_time() {
  # field 22; the command name (field 2) is in parentheses and may hold spaces
  sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20
}

same_process() {
  [ -r "/proc/$1/stat" ] || return 1
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ "$state" != "Z" ] || return 1
  [ "$(start_time "$1")" = "$2" ]
}

command=$1
shift
case "$command" in
start)
  dir=$1
  shift
  [ "$1" = "--" ] && shift
  mkdir -p "$dir" && cd "$dir" || exit 2
  rm -f exit_code .exit_code.tmp pid
  size=0
  [ -f events.jsonl ] && size=$(wc -c < events.jsonl)
  setsid sh -c 'echo $$ > pid.tmp && mv pid.tmp pid; trap "" HUP; trap : TERM INT; "$@"; code=$?; echo $code > .exit_code.tmp && mv .exit_code.tmp exit_code' \
    peftctl-job "$@" < /dev/null >> stdout.log 2>> stderr.log &
  tries=0
  while [ ! -s pid ]; do
    tries=$((tries + 1))
    [ $tries -gt 200 ] && { echo "the job did not start" >&2; exit 1; }
    sleep 0.05
  done
  pid=$(cat pid)
  echo "started $pid $(start_time "$pid") $size"
  ;;
status)
  pid=$1 start=$2 dir=$3
  if [ -f "$dir/exit_code" ] && [ "$(cat "$dir/pid" 2>/dev/null)" = "$pid" ]; then
    # written last by the wrapper: the job has ended (its group may still be winding down)
    echo "exited $(cat "$dir/exit_code")"
  elif same_process "$pid" "$start"; then
    echo running
  else
    echo gone
  fi
  ;;
signal)
  pid=$1 start=$2 sig=$3
  if same_process "$pid" "$start"; then
    # no "--": dash's kill takes none, and reads -PID after the signal as a process group
    kill "-$sig" "-$pid" 2>/dev/null || kill "-$sig" "$pid"
    echo sent
  else
    echo not-running
  fi
  ;;
*)
  echo "remote.sh: unknown command $command" >&2
  exit 2
  ;;
esac
