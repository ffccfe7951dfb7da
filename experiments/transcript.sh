# Sourced by the scripts that keep a transcript of documented commands (experiments/quickstart/run.sh,
# experiments/groups/run.sh). transcript LOG COMMAND...: from the repository's root, write to LOG the
# machine (tinychar/record.py's machine_line), then each command, what it printed and its wall time.
transcript() {
  local log=$1 command start
  shift
  python -c "from tinychar import record; print(record.machine_line(record.session('cpu', 'auto')))" > "$log"
  for command in "$@"; do
    echo "\$ $command" >> "$log"
    start=$(date +%s.%N)
    eval "$command" >> "$log" 2>&1
    echo "# $(python -c "print(f'{$(date +%s.%N) - $start:.1f}')") s" >> "$log"
  done
}
