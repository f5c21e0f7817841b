
use builtin;
use str;

set edit:completion:arg-completer[cbreak] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'cbreak'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'cbreak'= {
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand run 'Run a command through a breaker'
            cand status 'Show one breaker, or all of them'
            cand trip 'Force a breaker open: until `reset`, or for a while with --for'
            cand reset 'Close a breaker and forget its failures'
            cand check 'Exit 0 if a call would run now, 75 if it would be skipped; change nothing'
            cand record 'Record an outcome from a script, as `run` would'
            cand disable 'Metrics only: every call runs and is counted, the breaker never opens'
            cand enable 'Undo `disable`'
            cand list 'Print the breakers'' names, one per line'
            cand forget 'Delete a breaker''s record'
            cand metrics 'Print every breaker''s metrics in the Prometheus text format'
            cand name 'Print the name of the breaker `run` would use for a command without --name'
            cand completions 'Print the completion script for a shell'
            cand man 'Print a man page (roff): `cbreak man run | man -l -`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'cbreak;run'= {
            cand -n 'Breaker name [default: the program''s name and a hash of the whole command]'
            cand --name 'Breaker name [default: the program''s name and a hash of the whole command]'
            cand -t 'Consecutive failures that open the breaker (0: no consecutive rule)'
            cand --threshold 'Consecutive failures that open the breaker (0: no consecutive rule)'
            cand -r 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)'
            cand --recovery 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)'
            cand --open-exit-code 'Exit status when the command is skipped'
            cand --on-state-error 'What to do when the state cannot be read or written'
            cand --fallback 'Shell command to run instead when the call is skipped; exit with its status'
            cand --failure-rate 'Open when the failure rate in the window reaches PCT (50% or 50)'
            cand --window 'The failure-rate window: the last N calls, or the calls of the last DURATION [default: 100]'
            cand --min-calls 'Calls needed in the window before the failure rate is judged'
            cand --timeout 'Kill the command (and all it started) when it runs longer; exit 124'
            cand --kill-after 'After the timeout''s signal, wait this long before SIGKILL'
            cand -s 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number'
            cand --signal 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number'
            cand --slow 'Count a success that takes longer than this as a failure'
            cand --success-codes 'Exit codes that are successes (e.g. 0,2-5; death by signal N is 128+N)'
            cand --ignore-codes 'Exit codes that count as neither success nor failure (141: SIGPIPE)'
            cand --backoff 'How the open period grows when probes keep failing'
            cand --backoff-factor 'Multiplier of the exponential backoff'
            cand --max-recovery 'Longest open period with exponential backoff [default: 1h, or --recovery if longer]'
            cand --jitter 'Spread each open period randomly by ±PCT'
            cand --probes 'Successful probes in a row that close the breaker'
            cand --on-open 'Shell command to run when this process opens the breaker'
            cand --on-close 'Shell command to run when this process closes the breaker'
            cand --on-half-open 'Shell command to run when this process moves the breaker to half-open'
            cand --on-change 'Shell command to run on any transition this process makes'
            cand --hook-timeout 'Longest a hook may run before it is killed'
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand -q 'No message when skipping or changing state'
            cand --quiet 'No message when skipping or changing state'
            cand --quiet-skips 'No message when skipping, but still say when the breaker opens or closes (for cron)'
            cand --foreground 'With --timeout, move no process group (timeout --foreground): the command can read the terminal even from a script; only it is killed at the timeout'
            cand --preserve-status 'At a timeout, exit with the command''s status (128+N for signal N) instead of 124'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'cbreak;status'= {
            cand --color 'When to colour the state'
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --json 'Print JSON: an object for NAME, an array for all'
            cand --ascii 'Plain ASCII: + and x for the recent outcomes'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cbreak;trip'= {
            cand --for 'Open for this long, then probe as usual [default: until `reset`]'
            cand --on-open 'Shell command to run when this process opens the breaker'
            cand --on-close 'Shell command to run when this process closes the breaker'
            cand --on-half-open 'Shell command to run when this process moves the breaker to half-open'
            cand --on-change 'Shell command to run on any transition this process makes'
            cand --hook-timeout 'Longest a hook may run before it is killed'
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --create 'Make the breaker if there is none of that name (e.g. before a maintenance window)'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cbreak;reset'= {
            cand --on-open 'Shell command to run when this process opens the breaker'
            cand --on-close 'Shell command to run when this process closes the breaker'
            cand --on-half-open 'Shell command to run when this process moves the breaker to half-open'
            cand --on-change 'Shell command to run on any transition this process makes'
            cand --hook-timeout 'Longest a hook may run before it is killed'
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cbreak;check'= {
            cand --on-state-error 'When the state cannot be used: run (exit 0, as `run` would run the command), skip (exit 75) or fail (exit 125)'
            cand -t 'Consecutive failures that open the breaker (0: no consecutive rule)'
            cand --threshold 'Consecutive failures that open the breaker (0: no consecutive rule)'
            cand -r 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)'
            cand --recovery 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)'
            cand --failure-rate 'Open when the failure rate in the window reaches PCT (50% or 50)'
            cand --window 'The failure-rate window: the last N calls, or the calls of the last DURATION [default: 100]'
            cand --min-calls 'Calls needed in the window before the failure rate is judged'
            cand --timeout 'Kill the command (and all it started) when it runs longer; exit 124'
            cand --kill-after 'After the timeout''s signal, wait this long before SIGKILL'
            cand -s 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number'
            cand --signal 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number'
            cand --slow 'Count a success that takes longer than this as a failure'
            cand --success-codes 'Exit codes that are successes (e.g. 0,2-5; death by signal N is 128+N)'
            cand --ignore-codes 'Exit codes that count as neither success nor failure (141: SIGPIPE)'
            cand --backoff 'How the open period grows when probes keep failing'
            cand --backoff-factor 'Multiplier of the exponential backoff'
            cand --max-recovery 'Longest open period with exponential backoff [default: 1h, or --recovery if longer]'
            cand --jitter 'Spread each open period randomly by ±PCT'
            cand --probes 'Successful probes in a row that close the breaker'
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --foreground 'With --timeout, move no process group (timeout --foreground): the command can read the terminal even from a script; only it is killed at the timeout'
            cand --preserve-status 'At a timeout, exit with the command''s status (128+N for signal N) instead of 124'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'cbreak;record'= {
            cand -t 'Consecutive failures that open the breaker (0: no consecutive rule)'
            cand --threshold 'Consecutive failures that open the breaker (0: no consecutive rule)'
            cand -r 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)'
            cand --recovery 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)'
            cand --failure-rate 'Open when the failure rate in the window reaches PCT (50% or 50)'
            cand --window 'The failure-rate window: the last N calls, or the calls of the last DURATION [default: 100]'
            cand --min-calls 'Calls needed in the window before the failure rate is judged'
            cand --timeout 'Kill the command (and all it started) when it runs longer; exit 124'
            cand --kill-after 'After the timeout''s signal, wait this long before SIGKILL'
            cand -s 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number'
            cand --signal 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number'
            cand --slow 'Count a success that takes longer than this as a failure'
            cand --success-codes 'Exit codes that are successes (e.g. 0,2-5; death by signal N is 128+N)'
            cand --ignore-codes 'Exit codes that count as neither success nor failure (141: SIGPIPE)'
            cand --backoff 'How the open period grows when probes keep failing'
            cand --backoff-factor 'Multiplier of the exponential backoff'
            cand --max-recovery 'Longest open period with exponential backoff [default: 1h, or --recovery if longer]'
            cand --jitter 'Spread each open period randomly by ±PCT'
            cand --probes 'Successful probes in a row that close the breaker'
            cand --on-open 'Shell command to run when this process opens the breaker'
            cand --on-close 'Shell command to run when this process closes the breaker'
            cand --on-half-open 'Shell command to run when this process moves the breaker to half-open'
            cand --on-change 'Shell command to run on any transition this process makes'
            cand --hook-timeout 'Longest a hook may run before it is killed'
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand -q 'No message when changing state'
            cand --quiet 'No message when changing state'
            cand --foreground 'With --timeout, move no process group (timeout --foreground): the command can read the terminal even from a script; only it is killed at the timeout'
            cand --preserve-status 'At a timeout, exit with the command''s status (128+N for signal N) instead of 124'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cbreak;disable'= {
            cand --on-open 'Shell command to run when this process opens the breaker'
            cand --on-close 'Shell command to run when this process closes the breaker'
            cand --on-half-open 'Shell command to run when this process moves the breaker to half-open'
            cand --on-change 'Shell command to run on any transition this process makes'
            cand --hook-timeout 'Longest a hook may run before it is killed'
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --create 'Make the breaker if there is none of that name'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cbreak;enable'= {
            cand --on-open 'Shell command to run when this process opens the breaker'
            cand --on-close 'Shell command to run when this process closes the breaker'
            cand --on-half-open 'Shell command to run when this process moves the breaker to half-open'
            cand --on-change 'Shell command to run on any transition this process makes'
            cand --hook-timeout 'Longest a hook may run before it is killed'
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cbreak;list'= {
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cbreak;forget'= {
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cbreak;metrics'= {
            cand -o 'Write to FILE atomically (for node_exporter''s textfile collector): a new path or a regular file, never through a symlink; `-` is stdout'
            cand --output 'Write to FILE atomically (for node_exporter''s textfile collector): a new path or a regular file, never through a symlink; `-` is stdout'
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cbreak;name'= {
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cbreak;completions'= {
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'cbreak;man'= {
            cand --state-dir 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]'
            cand --lock-timeout 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]'
            cand --store 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH'
            cand --store-prefix 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]'
            cand --store-timeout 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]'
            cand --store-expiry 'Let the --store server delete a breaker nobody has written for this long [default: never]'
            cand --list 'Print the pages'' names, one per line'
            cand --allow-network-fs 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'cbreak;help'= {
            cand run 'Run a command through a breaker'
            cand status 'Show one breaker, or all of them'
            cand trip 'Force a breaker open: until `reset`, or for a while with --for'
            cand reset 'Close a breaker and forget its failures'
            cand check 'Exit 0 if a call would run now, 75 if it would be skipped; change nothing'
            cand record 'Record an outcome from a script, as `run` would'
            cand disable 'Metrics only: every call runs and is counted, the breaker never opens'
            cand enable 'Undo `disable`'
            cand list 'Print the breakers'' names, one per line'
            cand forget 'Delete a breaker''s record'
            cand metrics 'Print every breaker''s metrics in the Prometheus text format'
            cand name 'Print the name of the breaker `run` would use for a command without --name'
            cand completions 'Print the completion script for a shell'
            cand man 'Print a man page (roff): `cbreak man run | man -l -`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'cbreak;help;run'= {
        }
        &'cbreak;help;status'= {
        }
        &'cbreak;help;trip'= {
        }
        &'cbreak;help;reset'= {
        }
        &'cbreak;help;check'= {
        }
        &'cbreak;help;record'= {
        }
        &'cbreak;help;disable'= {
        }
        &'cbreak;help;enable'= {
        }
        &'cbreak;help;list'= {
        }
        &'cbreak;help;forget'= {
        }
        &'cbreak;help;metrics'= {
        }
        &'cbreak;help;name'= {
        }
        &'cbreak;help;completions'= {
        }
        &'cbreak;help;man'= {
        }
        &'cbreak;help;help'= {
        }
    ]
    $completions[$command]
}
