# bash completion for bulkhead (compartment names from `bulkhead ls --json`)
_bulkhead_compartments() {
    bulkhead ls --json 2>/dev/null | python3 -c 'import json,sys
for c in json.load(sys.stdin)["compartments"]: print(c["name"])' 2>/dev/null
}

_bulkhead() {
    local cur prev words cword
    _init_completion || return
    local commands="daemon apply plan rollback generations config ls net start stop restart run shell show grant revoke
        copy policy pending approve deny audit sandbox demo version help"
    if ((cword == 1)); then
        COMPREPLY=($(compgen -W "$commands --help" -- "$cur"))
        return
    fi
    local command=${words[1]}
    case $prev in
    --config | --root) _filedir; return ;;
    --socket) _filedir; return ;;
    --at) return ;;
    esac
    case $command in
    start | restart | show | shell)
        COMPREPLY=($(compgen -W "$(_bulkhead_compartments) --help" -- "$cur")) ;;
    stop)
        COMPREPLY=($(compgen -W "$(_bulkhead_compartments) --all --help" -- "$cur")) ;;
    run)
        if [[ " ${words[*]:2:cword-2} " == *" -- "* ]]; then
            _command_offset $((cword))
        else
            COMPREPLY=($(compgen -W "$(_bulkhead_compartments) --tty --raw --user --disposable -- --help" -- "$cur"))
        fi ;;
    grant | revoke)
        if ((cword == 2)); then
            COMPREPLY=($(compgen -W "$(_bulkhead_compartments)" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "--ro --rw --at --help" -- "$cur"))
        fi ;;
    apply | plan) _filedir toml ;;
    ls | net | generations | pending) COMPREPLY=($(compgen -W "--json --help" -- "$cur")) ;;
    config) COMPREPLY=($(compgen -W "show --json --help" -- "$cur")) ;;
    audit) COMPREPLY=($(compgen -W "verify --follow --json --help" -- "$cur")) ;;
    policy)
        if ((cword == 2)); then
            COMPREPLY=($(compgen -W "check lint --help" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$(_bulkhead_compartments) @host @default @disposable --explain" -- "$cur"))
        fi ;;
    copy)
        COMPREPLY=($(compgen -W "$(_bulkhead_compartments | sed 's/$/:/')" -- "$cur"))
        compopt -o nospace
        _filedir ;;
    daemon) COMPREPLY=($(compgen -W "--config --root --socket --ask-timeout --slots --audit-file-size --audit-keep-files --state-reserve --help" -- "$cur")) ;;
    esac
}
complete -F _bulkhead bulkhead
