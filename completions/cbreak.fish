# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cbreak_global_optspecs
    string join \n state-dir= allow-network-fs lock-timeout= store= store-prefix= store-timeout= store-expiry= h/help V/version
end

function __fish_cbreak_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cbreak_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cbreak_using_subcommand
    set -l cmd (__fish_cbreak_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cbreak -n "__fish_cbreak_needs_command" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_needs_command" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_needs_command" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_needs_command" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_needs_command" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_needs_command" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_needs_command" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cbreak -n "__fish_cbreak_needs_command" -s V -l version -d 'Print version'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "run" -d 'Run a command through a breaker'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "status" -d 'Show one breaker, or all of them'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "trip" -d 'Force a breaker open: until `reset`, or for a while with --for'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "reset" -d 'Close a breaker and forget its failures'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "check" -d 'Exit 0 if a call would run now, 75 if it would be skipped; change nothing'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "record" -d 'Record an outcome from a script, as `run` would'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "disable" -d 'Metrics only: every call runs and is counted, the breaker never opens'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "enable" -d 'Undo `disable`'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "list" -d 'Print the breakers\' names, one per line'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "forget" -d 'Delete a breaker\'s record'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "metrics" -d 'Print every breaker\'s metrics in the Prometheus text format'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "name" -d 'Print the name of the breaker `run` would use for a command without --name'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "completions" -d 'Print the completion script for a shell'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "man" -d 'Print a man page (roff): `cbreak man run | man -l -`'
complete -c cbreak -n "__fish_cbreak_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -s n -l name -d 'Breaker name [default: the program\'s name and a hash of the whole command]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -s t -l threshold -d 'Consecutive failures that open the breaker (0: no consecutive rule)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -s r -l recovery -d 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l open-exit-code -d 'Exit status when the command is skipped' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l on-state-error -d 'What to do when the state cannot be read or written' -r -f -a "run\t'Warn and run the command anyway (fail open)'
skip\t'Warn and skip the command, as if the breaker were open'
fail\t'Exit 125 without running the command'"
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l fallback -d 'Shell command to run instead when the call is skipped; exit with its status' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l failure-rate -d 'Open when the failure rate in the window reaches PCT (50% or 50)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l window -d 'The failure-rate window: the last N calls, or the calls of the last DURATION [default: 100]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l min-calls -d 'Calls needed in the window before the failure rate is judged' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l timeout -d 'Kill the command (and all it started) when it runs longer; exit 124' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l kill-after -d 'After the timeout\'s signal, wait this long before SIGKILL' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -s s -l signal -d 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l slow -d 'Count a success that takes longer than this as a failure' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l success-codes -d 'Exit codes that are successes (e.g. 0,2-5; death by signal N is 128+N)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l ignore-codes -d 'Exit codes that count as neither success nor failure (141: SIGPIPE)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l backoff -d 'How the open period grows when probes keep failing' -r -f -a "constant\t''
exponential\t''"
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l backoff-factor -d 'Multiplier of the exponential backoff' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l max-recovery -d 'Longest open period with exponential backoff [default: 1h, or --recovery if longer]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l jitter -d 'Spread each open period randomly by ±PCT' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l probes -d 'Successful probes in a row that close the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l on-open -d 'Shell command to run when this process opens the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l on-close -d 'Shell command to run when this process closes the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l on-half-open -d 'Shell command to run when this process moves the breaker to half-open' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l on-change -d 'Shell command to run on any transition this process makes' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l hook-timeout -d 'Longest a hook may run before it is killed' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -s q -l quiet -d 'No message when skipping or changing state'
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l quiet-skips -d 'No message when skipping, but still say when the breaker opens or closes (for cron)'
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l foreground -d 'With --timeout, move no process group (timeout --foreground): the command can read the terminal even from a script; only it is killed at the timeout'
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l preserve-status -d 'At a timeout, exit with the command\'s status (128+N for signal N) instead of 124'
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cbreak -n "__fish_cbreak_using_subcommand status" -l color -d 'When to colour the state' -r -f -a "auto\t''
always\t''
never\t''"
complete -c cbreak -n "__fish_cbreak_using_subcommand status" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand status" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand status" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand status" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand status" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand status" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand status" -l json -d 'Print JSON: an object for NAME, an array for all'
complete -c cbreak -n "__fish_cbreak_using_subcommand status" -l ascii -d 'Plain ASCII: + and x for the recent outcomes'
complete -c cbreak -n "__fish_cbreak_using_subcommand status" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand status" -s h -l help -d 'Print help'
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l for -d 'Open for this long, then probe as usual [default: until `reset`]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l on-open -d 'Shell command to run when this process opens the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l on-close -d 'Shell command to run when this process closes the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l on-half-open -d 'Shell command to run when this process moves the breaker to half-open' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l on-change -d 'Shell command to run on any transition this process makes' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l hook-timeout -d 'Longest a hook may run before it is killed' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l create -d 'Make the breaker if there is none of that name (e.g. before a maintenance window)'
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand trip" -s h -l help -d 'Print help'
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -l on-open -d 'Shell command to run when this process opens the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -l on-close -d 'Shell command to run when this process closes the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -l on-half-open -d 'Shell command to run when this process moves the breaker to half-open' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -l on-change -d 'Shell command to run on any transition this process makes' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -l hook-timeout -d 'Longest a hook may run before it is killed' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand reset" -s h -l help -d 'Print help'
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l on-state-error -d 'When the state cannot be used: run (exit 0, as `run` would run the command), skip (exit 75) or fail (exit 125)' -r -f -a "run\t'Warn and run the command anyway (fail open)'
skip\t'Warn and skip the command, as if the breaker were open'
fail\t'Exit 125 without running the command'"
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -s t -l threshold -d 'Consecutive failures that open the breaker (0: no consecutive rule)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -s r -l recovery -d 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l failure-rate -d 'Open when the failure rate in the window reaches PCT (50% or 50)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l window -d 'The failure-rate window: the last N calls, or the calls of the last DURATION [default: 100]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l min-calls -d 'Calls needed in the window before the failure rate is judged' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l timeout -d 'Kill the command (and all it started) when it runs longer; exit 124' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l kill-after -d 'After the timeout\'s signal, wait this long before SIGKILL' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -s s -l signal -d 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l slow -d 'Count a success that takes longer than this as a failure' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l success-codes -d 'Exit codes that are successes (e.g. 0,2-5; death by signal N is 128+N)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l ignore-codes -d 'Exit codes that count as neither success nor failure (141: SIGPIPE)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l backoff -d 'How the open period grows when probes keep failing' -r -f -a "constant\t''
exponential\t''"
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l backoff-factor -d 'Multiplier of the exponential backoff' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l max-recovery -d 'Longest open period with exponential backoff [default: 1h, or --recovery if longer]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l jitter -d 'Spread each open period randomly by ±PCT' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l probes -d 'Successful probes in a row that close the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l foreground -d 'With --timeout, move no process group (timeout --foreground): the command can read the terminal even from a script; only it is killed at the timeout'
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l preserve-status -d 'At a timeout, exit with the command\'s status (128+N for signal N) instead of 124'
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -s t -l threshold -d 'Consecutive failures that open the breaker (0: no consecutive rule)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -s r -l recovery -d 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l failure-rate -d 'Open when the failure rate in the window reaches PCT (50% or 50)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l window -d 'The failure-rate window: the last N calls, or the calls of the last DURATION [default: 100]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l min-calls -d 'Calls needed in the window before the failure rate is judged' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l timeout -d 'Kill the command (and all it started) when it runs longer; exit 124' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l kill-after -d 'After the timeout\'s signal, wait this long before SIGKILL' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -s s -l signal -d 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l slow -d 'Count a success that takes longer than this as a failure' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l success-codes -d 'Exit codes that are successes (e.g. 0,2-5; death by signal N is 128+N)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l ignore-codes -d 'Exit codes that count as neither success nor failure (141: SIGPIPE)' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l backoff -d 'How the open period grows when probes keep failing' -r -f -a "constant\t''
exponential\t''"
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l backoff-factor -d 'Multiplier of the exponential backoff' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l max-recovery -d 'Longest open period with exponential backoff [default: 1h, or --recovery if longer]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l jitter -d 'Spread each open period randomly by ±PCT' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l probes -d 'Successful probes in a row that close the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l on-open -d 'Shell command to run when this process opens the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l on-close -d 'Shell command to run when this process closes the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l on-half-open -d 'Shell command to run when this process moves the breaker to half-open' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l on-change -d 'Shell command to run on any transition this process makes' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l hook-timeout -d 'Longest a hook may run before it is killed' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -s q -l quiet -d 'No message when changing state'
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l foreground -d 'With --timeout, move no process group (timeout --foreground): the command can read the terminal even from a script; only it is killed at the timeout'
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l preserve-status -d 'At a timeout, exit with the command\'s status (128+N for signal N) instead of 124'
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand record" -s h -l help -d 'Print help'
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l on-open -d 'Shell command to run when this process opens the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l on-close -d 'Shell command to run when this process closes the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l on-half-open -d 'Shell command to run when this process moves the breaker to half-open' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l on-change -d 'Shell command to run on any transition this process makes' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l hook-timeout -d 'Longest a hook may run before it is killed' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l create -d 'Make the breaker if there is none of that name'
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand disable" -s h -l help -d 'Print help'
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -l on-open -d 'Shell command to run when this process opens the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -l on-close -d 'Shell command to run when this process closes the breaker' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -l on-half-open -d 'Shell command to run when this process moves the breaker to half-open' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -l on-change -d 'Shell command to run on any transition this process makes' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -l hook-timeout -d 'Longest a hook may run before it is killed' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand enable" -s h -l help -d 'Print help'
complete -c cbreak -n "__fish_cbreak_using_subcommand list" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand list" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand list" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand list" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand list" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand list" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand list" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand list" -s h -l help -d 'Print help'
complete -c cbreak -n "__fish_cbreak_using_subcommand forget" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand forget" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand forget" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand forget" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand forget" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand forget" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand forget" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand forget" -s h -l help -d 'Print help'
complete -c cbreak -n "__fish_cbreak_using_subcommand metrics" -s o -l output -d 'Write to FILE atomically (for node_exporter\'s textfile collector): a new path or a regular file, never through a symlink; `-` is stdout' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand metrics" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand metrics" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand metrics" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand metrics" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand metrics" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand metrics" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand metrics" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand metrics" -s h -l help -d 'Print help'
complete -c cbreak -n "__fish_cbreak_using_subcommand name" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand name" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand name" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand name" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand name" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand name" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand name" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand name" -s h -l help -d 'Print help'
complete -c cbreak -n "__fish_cbreak_using_subcommand completions" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand completions" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand completions" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand completions" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand completions" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand completions" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand completions" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cbreak -n "__fish_cbreak_using_subcommand man" -l state-dir -d 'Directory of the breakers\' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]' -r -F
complete -c cbreak -n "__fish_cbreak_using_subcommand man" -l lock-timeout -d 'How long to wait for another process\'s lock on a record (with --store: for other processes\' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand man" -l store -d 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand man" -l store-prefix -d 'Prefix of the breakers\' keys on the --store server, so that teams can share one [default: cbreak:]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand man" -l store-timeout -d 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand man" -l store-expiry -d 'Let the --store server delete a breaker nobody has written for this long [default: never]' -r
complete -c cbreak -n "__fish_cbreak_using_subcommand man" -l list -d 'Print the pages\' names, one per line'
complete -c cbreak -n "__fish_cbreak_using_subcommand man" -l allow-network-fs -d 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
complete -c cbreak -n "__fish_cbreak_using_subcommand man" -s h -l help -d 'Print help'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "run" -d 'Run a command through a breaker'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "status" -d 'Show one breaker, or all of them'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "trip" -d 'Force a breaker open: until `reset`, or for a while with --for'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "reset" -d 'Close a breaker and forget its failures'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "check" -d 'Exit 0 if a call would run now, 75 if it would be skipped; change nothing'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "record" -d 'Record an outcome from a script, as `run` would'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "disable" -d 'Metrics only: every call runs and is counted, the breaker never opens'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "enable" -d 'Undo `disable`'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "list" -d 'Print the breakers\' names, one per line'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "forget" -d 'Delete a breaker\'s record'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "metrics" -d 'Print every breaker\'s metrics in the Prometheus text format'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "name" -d 'Print the name of the breaker `run` would use for a command without --name'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "completions" -d 'Print the completion script for a shell'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "man" -d 'Print a man page (roff): `cbreak man run | man -l -`'
complete -c cbreak -n "__fish_cbreak_using_subcommand help; and not __fish_seen_subcommand_from run status trip reset check record disable enable list forget metrics name completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

# Added to clap's completion: breaker names where a NAME goes, from
# `cbreak list` in the state directory the command line names.
function __cbreak_breakers
    set -l args (commandline -opc)
    set -l dir
    for i in (seq (count $args))
        switch $args[$i]
            case --state-dir
                set dir $args[(math $i + 1)]
            case '--state-dir=*'
                set dir (string replace -- --state-dir= '' $args[$i])
        end
    end
    if test -n "$dir"
        cbreak --state-dir $dir list 2>/dev/null
    else
        cbreak list 2>/dev/null
    end
end

# The command line after `--`, completed as that command's own.
function __cbreak_after_dashdash
    set -l args (commandline -opc)
    set -l i (contains -i -- -- $args); or return 1
    set -l rest $args[(math $i + 1)..-1]
    if test (count $rest) -eq 0
        __fish_complete_command
    else
        complete -C (string join ' ' -- (string escape -- $rest) (commandline -ct))
    end
end

complete -c cbreak -n "__fish_seen_subcommand_from status trip reset check record disable enable forget; and not contains -- -- (commandline -opc)" -f -a "(__cbreak_breakers)"
complete -c cbreak -n "__fish_seen_subcommand_from run" -s n -l name -x -a "(__cbreak_breakers)"
complete -c cbreak -n "__fish_seen_subcommand_from run name check; and contains -- -- (commandline -opc)" -f -a "(__cbreak_after_dashdash)"
