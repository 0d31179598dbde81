#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The bash completion of the usmc tools, called as bash calls it: the
# function registered for the command, with COMP_WORDS and COMP_CWORD set
# as for a line typed up to the cursor.
#
# usage: completion.sh COMPLETION_FILE [TOOLS_DIR]
#   TOOLS_DIR holds usmc-stat, whose options come from its --help
#   (without it, usmc-stat's options are not checked).

set -u
file=$1 tools=${2:-}
bc=/usr/share/bash-completion/bash_completion
if [[ ! -r $bc ]]; then
	echo "skipped: bash-completion is not installed ($bc)"
	exit 77
fi
file=$(realpath "$file") || exit 1
[[ -n $tools ]] && PATH=$(realpath "$tools"):$PATH
# shellcheck source=/dev/null
source "$bc"
# shellcheck source=../completion/usmc
source "$file" || exit 1
# Outside a real completion compopt can only complain; what it sets is not checked.
compopt() { builtin compopt "$@" 2> /dev/null || true; }

failures=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
touch policy.conf results.json
mkdir plots

# complete LINE: COMPREPLY for the cursor at the end of LINE.
complete_line() {
	local line=$1 fn
	COMP_LINE=$line
	COMP_POINT=${#line}
	read -ra COMP_WORDS <<< "$line"
	[[ $line == *' ' ]] && COMP_WORDS+=('')
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	fn=$(complete -p "${COMP_WORDS[0]}" 2> /dev/null | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
	COMPREPLY=()
	if [[ -z $fn ]]; then
		echo "FAIL: no completion registered for ${COMP_WORDS[0]}" >&2
		failures=$((failures + 1))
		return
	fi
	"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]:-}"
}

has() {
	local want=$1 w
	for w in "${COMPREPLY[@]}"; do
		[[ $w == "$want" ]] && return 0
	done
	return 1
}

# offers LINE WORD...: each WORD is offered.
offers() {
	local line=$1 w
	shift
	complete_line "$line"
	for w in "$@"; do
		has "$w" && continue
		echo "FAIL: '$line' does not offer '$w': ${COMPREPLY[*]:-nothing}" >&2
		failures=$((failures + 1))
	done
}

# offers_only LINE WORD...: exactly these words, in any order.
offers_only() {
	local line=$1 got want
	shift
	complete_line "$line"
	got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | paste -sd' ')
	want=$(printf '%s\n' "$@" | sort | paste -sd' ')
	[[ $got == "$want" ]] && return
	echo "FAIL: '$line' offers '$got', not '$want'" >&2
	failures=$((failures + 1))
}

# usmc-run: its options first, then the program, completed as itself.
offers_only 'usmc-run --' --kernel --check-policy --enable --disable --help --version --
offers_only 'usmc-run --ke' --kernel
offers_only 'usmc-run --kernel -' --
offers 'usmc-run --check-policy ' policy.conf results.json plots -
offers_only 'usmc-run --check-policy pol' policy.conf
offers_only 'usmc-run --check-policy policy.conf ' 
offers 'usmc-run ech' echo
offers 'usmc-run --kernel ech' echo
offers_only 'usmc-run usmc-bench --ru' --runs
offers_only 'usmc-run --kernel -- usmc-kernel st' status
offers_only 'usmc-run usmc-kernel policy s' set show
offers_only 'usmc-run -- usmc-run --ke' --kernel

# usmc-kernel: options, commands, their selectors and values.
offers_only 'usmc-kernel ' status enable disable policy
offers_only 'usmc-kernel --' --verbose --json --help --version
offers_only 'usmc-kernel -v dis' disable
offers_only 'usmc-kernel status -' --json --help
offers_only 'usmc-kernel enable --' --cgroup --pid --netns --comm --help
offers_only 'usmc-kernel disable --a' --all
offers_only 'usmc-kernel enable --a'
offers 'usmc-kernel enable --comm x --pid ' "$$"
offers_only 'usmc-kernel policy ' add del set show clear
offers 'usmc-kernel policy set ' policy.conf -
offers_only 'usmc-kernel policy show --' --json
offers_only 'usmc-kernel --help '

# usmc-bench: options, and comma-separated lists item by item.
offers_only 'usmc-bench --v' --verify --version
offers_only 'usmc-bench --tests stream,ping' stream,pingpong stream,pingpong-epoll
offers_only 'usmc-bench --tests conn' connrate connrate0
offers_only 'usmc-bench --transports tcp,fallback-' tcp,fallback-server
offers_only 'usmc-bench --json ' results.json plots
offers_only 'usmc-bench --plot ' plots
offers_only 'usmc-bench --runs '
offers 'usmc-bench --quick ' --runs --duration --tests --transports --verify --json --plot

# usmc-stat: its --help's options, and pids.
offers 'usmc-stat -p ' "$$"
if [[ -n $tools ]]; then
	offers 'usmc-stat --' --json --kernel
	offers_only 'usmc-stat --js' --json
fi

if ((failures)); then
	echo "$failures failure(s)" >&2
	exit 1
fi
echo "completion: all lines complete as expected"
