#!/usr/bin/env bash
# Prints the hardening suite's counts (tests/it/harden), added up from the lines its tests
# append to the summary file (CACHEDECK_HARDEN_SUMMARY, default target/tmp/harden-summary.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
file="${CACHEDECK_HARDEN_SUMMARY:-target/tmp/harden-summary.txt}"
if [[ ! -s "$file" ]]; then
    echo "hardening summary: no counts in $file (were the harden:: tests run?)"
    exit 0
fi
awk '
    { sum[$1] += $2 }
    END {
        printf "hardening summary:\n"
        printf "  runbooks swept (kill, resume)   %d\n", sum["kill.runbooks_swept"]
        printf "  kill points (SIGKILL/TERM/HUP)  %d\n", sum["kill.kill_points"]
        printf "  kill points known not to hold   %d (listed by the sweep)\n", sum["kill.known_gaps"]
        printf "  canary flows / outputs scanned  %d / %d\n", sum["canary.flows"], sum["canary.outputs_scanned"]
        printf "  canary hits                     %d\n", sum["canary.hits"]
        printf "  hostile inputs tried            %d\n", sum["hostile.inputs"] + sum["hostile.keys_through_cli_outputs"]
        printf "  hostile TUI estates (7 screens) %d\n", sum["hostile.tui_screens"]
        printf "  ECS Exec frames / AWS answers   %d / %d\n", sum["parsers.frames"], sum["parsers.aws_answers"]
        printf "  connection cases                %d\n", sum["connection.cases"]
        printf "  two-operator cases              %d\n", sum["operators.cases"]
        printf "  terminal restore cases          %d\n", sum["terminal.cases"]
    }' "$file"
