
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'cbreak' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'cbreak'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'cbreak' {
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a command through a breaker')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show one breaker, or all of them')
            [CompletionResult]::new('trip', 'trip', [CompletionResultType]::ParameterValue, 'Force a breaker open: until `reset`, or for a while with --for')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Close a breaker and forget its failures')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Exit 0 if a call would run now, 75 if it would be skipped; change nothing')
            [CompletionResult]::new('record', 'record', [CompletionResultType]::ParameterValue, 'Record an outcome from a script, as `run` would')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Metrics only: every call runs and is counted, the breaker never opens')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Undo `disable`')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Print the breakers'' names, one per line')
            [CompletionResult]::new('forget', 'forget', [CompletionResultType]::ParameterValue, 'Delete a breaker''s record')
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'Print every breaker''s metrics in the Prometheus text format')
            [CompletionResult]::new('name', 'name', [CompletionResultType]::ParameterValue, 'Print the name of the breaker `run` would use for a command without --name')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the completion script for a shell')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print a man page (roff): `cbreak man run | man -l -`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'cbreak;run' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Breaker name [default: the program''s name and a hash of the whole command]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Breaker name [default: the program''s name and a hash of the whole command]')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Consecutive failures that open the breaker (0: no consecutive rule)')
            [CompletionResult]::new('--threshold', '--threshold', [CompletionResultType]::ParameterName, 'Consecutive failures that open the breaker (0: no consecutive rule)')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)')
            [CompletionResult]::new('--recovery', '--recovery', [CompletionResultType]::ParameterName, 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)')
            [CompletionResult]::new('--open-exit-code', '--open-exit-code', [CompletionResultType]::ParameterName, 'Exit status when the command is skipped')
            [CompletionResult]::new('--on-state-error', '--on-state-error', [CompletionResultType]::ParameterName, 'What to do when the state cannot be read or written')
            [CompletionResult]::new('--fallback', '--fallback', [CompletionResultType]::ParameterName, 'Shell command to run instead when the call is skipped; exit with its status')
            [CompletionResult]::new('--failure-rate', '--failure-rate', [CompletionResultType]::ParameterName, 'Open when the failure rate in the window reaches PCT (50% or 50)')
            [CompletionResult]::new('--window', '--window', [CompletionResultType]::ParameterName, 'The failure-rate window: the last N calls, or the calls of the last DURATION [default: 100]')
            [CompletionResult]::new('--min-calls', '--min-calls', [CompletionResultType]::ParameterName, 'Calls needed in the window before the failure rate is judged')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Kill the command (and all it started) when it runs longer; exit 124')
            [CompletionResult]::new('--kill-after', '--kill-after', [CompletionResultType]::ParameterName, 'After the timeout''s signal, wait this long before SIGKILL')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number')
            [CompletionResult]::new('--signal', '--signal', [CompletionResultType]::ParameterName, 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number')
            [CompletionResult]::new('--slow', '--slow', [CompletionResultType]::ParameterName, 'Count a success that takes longer than this as a failure')
            [CompletionResult]::new('--success-codes', '--success-codes', [CompletionResultType]::ParameterName, 'Exit codes that are successes (e.g. 0,2-5; death by signal N is 128+N)')
            [CompletionResult]::new('--ignore-codes', '--ignore-codes', [CompletionResultType]::ParameterName, 'Exit codes that count as neither success nor failure (141: SIGPIPE)')
            [CompletionResult]::new('--backoff', '--backoff', [CompletionResultType]::ParameterName, 'How the open period grows when probes keep failing')
            [CompletionResult]::new('--backoff-factor', '--backoff-factor', [CompletionResultType]::ParameterName, 'Multiplier of the exponential backoff')
            [CompletionResult]::new('--max-recovery', '--max-recovery', [CompletionResultType]::ParameterName, 'Longest open period with exponential backoff [default: 1h, or --recovery if longer]')
            [CompletionResult]::new('--jitter', '--jitter', [CompletionResultType]::ParameterName, 'Spread each open period randomly by ±PCT')
            [CompletionResult]::new('--probes', '--probes', [CompletionResultType]::ParameterName, 'Successful probes in a row that close the breaker')
            [CompletionResult]::new('--on-open', '--on-open', [CompletionResultType]::ParameterName, 'Shell command to run when this process opens the breaker')
            [CompletionResult]::new('--on-close', '--on-close', [CompletionResultType]::ParameterName, 'Shell command to run when this process closes the breaker')
            [CompletionResult]::new('--on-half-open', '--on-half-open', [CompletionResultType]::ParameterName, 'Shell command to run when this process moves the breaker to half-open')
            [CompletionResult]::new('--on-change', '--on-change', [CompletionResultType]::ParameterName, 'Shell command to run on any transition this process makes')
            [CompletionResult]::new('--hook-timeout', '--hook-timeout', [CompletionResultType]::ParameterName, 'Longest a hook may run before it is killed')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No message when skipping or changing state')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No message when skipping or changing state')
            [CompletionResult]::new('--quiet-skips', '--quiet-skips', [CompletionResultType]::ParameterName, 'No message when skipping, but still say when the breaker opens or closes (for cron)')
            [CompletionResult]::new('--foreground', '--foreground', [CompletionResultType]::ParameterName, 'With --timeout, move no process group (timeout --foreground): the command can read the terminal even from a script; only it is killed at the timeout')
            [CompletionResult]::new('--preserve-status', '--preserve-status', [CompletionResultType]::ParameterName, 'At a timeout, exit with the command''s status (128+N for signal N) instead of 124')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'cbreak;status' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the state')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON: an object for NAME, an array for all')
            [CompletionResult]::new('--ascii', '--ascii', [CompletionResultType]::ParameterName, 'Plain ASCII: + and x for the recent outcomes')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cbreak;trip' {
            [CompletionResult]::new('--for', '--for', [CompletionResultType]::ParameterName, 'Open for this long, then probe as usual [default: until `reset`]')
            [CompletionResult]::new('--on-open', '--on-open', [CompletionResultType]::ParameterName, 'Shell command to run when this process opens the breaker')
            [CompletionResult]::new('--on-close', '--on-close', [CompletionResultType]::ParameterName, 'Shell command to run when this process closes the breaker')
            [CompletionResult]::new('--on-half-open', '--on-half-open', [CompletionResultType]::ParameterName, 'Shell command to run when this process moves the breaker to half-open')
            [CompletionResult]::new('--on-change', '--on-change', [CompletionResultType]::ParameterName, 'Shell command to run on any transition this process makes')
            [CompletionResult]::new('--hook-timeout', '--hook-timeout', [CompletionResultType]::ParameterName, 'Longest a hook may run before it is killed')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--create', '--create', [CompletionResultType]::ParameterName, 'Make the breaker if there is none of that name (e.g. before a maintenance window)')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cbreak;reset' {
            [CompletionResult]::new('--on-open', '--on-open', [CompletionResultType]::ParameterName, 'Shell command to run when this process opens the breaker')
            [CompletionResult]::new('--on-close', '--on-close', [CompletionResultType]::ParameterName, 'Shell command to run when this process closes the breaker')
            [CompletionResult]::new('--on-half-open', '--on-half-open', [CompletionResultType]::ParameterName, 'Shell command to run when this process moves the breaker to half-open')
            [CompletionResult]::new('--on-change', '--on-change', [CompletionResultType]::ParameterName, 'Shell command to run on any transition this process makes')
            [CompletionResult]::new('--hook-timeout', '--hook-timeout', [CompletionResultType]::ParameterName, 'Longest a hook may run before it is killed')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cbreak;check' {
            [CompletionResult]::new('--on-state-error', '--on-state-error', [CompletionResultType]::ParameterName, 'When the state cannot be used: run (exit 0, as `run` would run the command), skip (exit 75) or fail (exit 125)')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Consecutive failures that open the breaker (0: no consecutive rule)')
            [CompletionResult]::new('--threshold', '--threshold', [CompletionResultType]::ParameterName, 'Consecutive failures that open the breaker (0: no consecutive rule)')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)')
            [CompletionResult]::new('--recovery', '--recovery', [CompletionResultType]::ParameterName, 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)')
            [CompletionResult]::new('--failure-rate', '--failure-rate', [CompletionResultType]::ParameterName, 'Open when the failure rate in the window reaches PCT (50% or 50)')
            [CompletionResult]::new('--window', '--window', [CompletionResultType]::ParameterName, 'The failure-rate window: the last N calls, or the calls of the last DURATION [default: 100]')
            [CompletionResult]::new('--min-calls', '--min-calls', [CompletionResultType]::ParameterName, 'Calls needed in the window before the failure rate is judged')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Kill the command (and all it started) when it runs longer; exit 124')
            [CompletionResult]::new('--kill-after', '--kill-after', [CompletionResultType]::ParameterName, 'After the timeout''s signal, wait this long before SIGKILL')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number')
            [CompletionResult]::new('--signal', '--signal', [CompletionResultType]::ParameterName, 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number')
            [CompletionResult]::new('--slow', '--slow', [CompletionResultType]::ParameterName, 'Count a success that takes longer than this as a failure')
            [CompletionResult]::new('--success-codes', '--success-codes', [CompletionResultType]::ParameterName, 'Exit codes that are successes (e.g. 0,2-5; death by signal N is 128+N)')
            [CompletionResult]::new('--ignore-codes', '--ignore-codes', [CompletionResultType]::ParameterName, 'Exit codes that count as neither success nor failure (141: SIGPIPE)')
            [CompletionResult]::new('--backoff', '--backoff', [CompletionResultType]::ParameterName, 'How the open period grows when probes keep failing')
            [CompletionResult]::new('--backoff-factor', '--backoff-factor', [CompletionResultType]::ParameterName, 'Multiplier of the exponential backoff')
            [CompletionResult]::new('--max-recovery', '--max-recovery', [CompletionResultType]::ParameterName, 'Longest open period with exponential backoff [default: 1h, or --recovery if longer]')
            [CompletionResult]::new('--jitter', '--jitter', [CompletionResultType]::ParameterName, 'Spread each open period randomly by ±PCT')
            [CompletionResult]::new('--probes', '--probes', [CompletionResultType]::ParameterName, 'Successful probes in a row that close the breaker')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--foreground', '--foreground', [CompletionResultType]::ParameterName, 'With --timeout, move no process group (timeout --foreground): the command can read the terminal even from a script; only it is killed at the timeout')
            [CompletionResult]::new('--preserve-status', '--preserve-status', [CompletionResultType]::ParameterName, 'At a timeout, exit with the command''s status (128+N for signal N) instead of 124')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'cbreak;record' {
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Consecutive failures that open the breaker (0: no consecutive rule)')
            [CompletionResult]::new('--threshold', '--threshold', [CompletionResultType]::ParameterName, 'Consecutive failures that open the breaker (0: no consecutive rule)')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)')
            [CompletionResult]::new('--recovery', '--recovery', [CompletionResultType]::ParameterName, 'Time open before a probe (30s, 5m, 1h; a bare number is seconds)')
            [CompletionResult]::new('--failure-rate', '--failure-rate', [CompletionResultType]::ParameterName, 'Open when the failure rate in the window reaches PCT (50% or 50)')
            [CompletionResult]::new('--window', '--window', [CompletionResultType]::ParameterName, 'The failure-rate window: the last N calls, or the calls of the last DURATION [default: 100]')
            [CompletionResult]::new('--min-calls', '--min-calls', [CompletionResultType]::ParameterName, 'Calls needed in the window before the failure rate is judged')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Kill the command (and all it started) when it runs longer; exit 124')
            [CompletionResult]::new('--kill-after', '--kill-after', [CompletionResultType]::ParameterName, 'After the timeout''s signal, wait this long before SIGKILL')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number')
            [CompletionResult]::new('--signal', '--signal', [CompletionResultType]::ParameterName, 'The signal sent at the timeout: a name (TERM, INT, KILL) or a number')
            [CompletionResult]::new('--slow', '--slow', [CompletionResultType]::ParameterName, 'Count a success that takes longer than this as a failure')
            [CompletionResult]::new('--success-codes', '--success-codes', [CompletionResultType]::ParameterName, 'Exit codes that are successes (e.g. 0,2-5; death by signal N is 128+N)')
            [CompletionResult]::new('--ignore-codes', '--ignore-codes', [CompletionResultType]::ParameterName, 'Exit codes that count as neither success nor failure (141: SIGPIPE)')
            [CompletionResult]::new('--backoff', '--backoff', [CompletionResultType]::ParameterName, 'How the open period grows when probes keep failing')
            [CompletionResult]::new('--backoff-factor', '--backoff-factor', [CompletionResultType]::ParameterName, 'Multiplier of the exponential backoff')
            [CompletionResult]::new('--max-recovery', '--max-recovery', [CompletionResultType]::ParameterName, 'Longest open period with exponential backoff [default: 1h, or --recovery if longer]')
            [CompletionResult]::new('--jitter', '--jitter', [CompletionResultType]::ParameterName, 'Spread each open period randomly by ±PCT')
            [CompletionResult]::new('--probes', '--probes', [CompletionResultType]::ParameterName, 'Successful probes in a row that close the breaker')
            [CompletionResult]::new('--on-open', '--on-open', [CompletionResultType]::ParameterName, 'Shell command to run when this process opens the breaker')
            [CompletionResult]::new('--on-close', '--on-close', [CompletionResultType]::ParameterName, 'Shell command to run when this process closes the breaker')
            [CompletionResult]::new('--on-half-open', '--on-half-open', [CompletionResultType]::ParameterName, 'Shell command to run when this process moves the breaker to half-open')
            [CompletionResult]::new('--on-change', '--on-change', [CompletionResultType]::ParameterName, 'Shell command to run on any transition this process makes')
            [CompletionResult]::new('--hook-timeout', '--hook-timeout', [CompletionResultType]::ParameterName, 'Longest a hook may run before it is killed')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No message when changing state')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No message when changing state')
            [CompletionResult]::new('--foreground', '--foreground', [CompletionResultType]::ParameterName, 'With --timeout, move no process group (timeout --foreground): the command can read the terminal even from a script; only it is killed at the timeout')
            [CompletionResult]::new('--preserve-status', '--preserve-status', [CompletionResultType]::ParameterName, 'At a timeout, exit with the command''s status (128+N for signal N) instead of 124')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cbreak;disable' {
            [CompletionResult]::new('--on-open', '--on-open', [CompletionResultType]::ParameterName, 'Shell command to run when this process opens the breaker')
            [CompletionResult]::new('--on-close', '--on-close', [CompletionResultType]::ParameterName, 'Shell command to run when this process closes the breaker')
            [CompletionResult]::new('--on-half-open', '--on-half-open', [CompletionResultType]::ParameterName, 'Shell command to run when this process moves the breaker to half-open')
            [CompletionResult]::new('--on-change', '--on-change', [CompletionResultType]::ParameterName, 'Shell command to run on any transition this process makes')
            [CompletionResult]::new('--hook-timeout', '--hook-timeout', [CompletionResultType]::ParameterName, 'Longest a hook may run before it is killed')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--create', '--create', [CompletionResultType]::ParameterName, 'Make the breaker if there is none of that name')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cbreak;enable' {
            [CompletionResult]::new('--on-open', '--on-open', [CompletionResultType]::ParameterName, 'Shell command to run when this process opens the breaker')
            [CompletionResult]::new('--on-close', '--on-close', [CompletionResultType]::ParameterName, 'Shell command to run when this process closes the breaker')
            [CompletionResult]::new('--on-half-open', '--on-half-open', [CompletionResultType]::ParameterName, 'Shell command to run when this process moves the breaker to half-open')
            [CompletionResult]::new('--on-change', '--on-change', [CompletionResultType]::ParameterName, 'Shell command to run on any transition this process makes')
            [CompletionResult]::new('--hook-timeout', '--hook-timeout', [CompletionResultType]::ParameterName, 'Longest a hook may run before it is killed')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cbreak;list' {
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cbreak;forget' {
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cbreak;metrics' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write to FILE atomically (for node_exporter''s textfile collector): a new path or a regular file, never through a symlink; `-` is stdout')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write to FILE atomically (for node_exporter''s textfile collector): a new path or a regular file, never through a symlink; `-` is stdout')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cbreak;name' {
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cbreak;completions' {
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'cbreak;man' {
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Directory of the breakers'' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock on a record (with --store: for other processes'' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH')
            [CompletionResult]::new('--store-prefix', '--store-prefix', [CompletionResultType]::ParameterName, 'Prefix of the breakers'' keys on the --store server, so that teams can share one [default: cbreak:]')
            [CompletionResult]::new('--store-timeout', '--store-timeout', [CompletionResultType]::ParameterName, 'How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]')
            [CompletionResult]::new('--store-expiry', '--store-expiry', [CompletionResultType]::ParameterName, 'Let the --store server delete a breaker nobody has written for this long [default: never]')
            [CompletionResult]::new('--list', '--list', [CompletionResultType]::ParameterName, 'Print the pages'' names, one per line')
            [CompletionResult]::new('--allow-network-fs', '--allow-network-fs', [CompletionResultType]::ParameterName, 'Use a state directory on a network file system (NFS, SMB, FUSE) anyway')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'cbreak;help' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a command through a breaker')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show one breaker, or all of them')
            [CompletionResult]::new('trip', 'trip', [CompletionResultType]::ParameterValue, 'Force a breaker open: until `reset`, or for a while with --for')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Close a breaker and forget its failures')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Exit 0 if a call would run now, 75 if it would be skipped; change nothing')
            [CompletionResult]::new('record', 'record', [CompletionResultType]::ParameterValue, 'Record an outcome from a script, as `run` would')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Metrics only: every call runs and is counted, the breaker never opens')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Undo `disable`')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Print the breakers'' names, one per line')
            [CompletionResult]::new('forget', 'forget', [CompletionResultType]::ParameterValue, 'Delete a breaker''s record')
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'Print every breaker''s metrics in the Prometheus text format')
            [CompletionResult]::new('name', 'name', [CompletionResultType]::ParameterValue, 'Print the name of the breaker `run` would use for a command without --name')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the completion script for a shell')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print a man page (roff): `cbreak man run | man -l -`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'cbreak;help;run' {
            break
        }
        'cbreak;help;status' {
            break
        }
        'cbreak;help;trip' {
            break
        }
        'cbreak;help;reset' {
            break
        }
        'cbreak;help;check' {
            break
        }
        'cbreak;help;record' {
            break
        }
        'cbreak;help;disable' {
            break
        }
        'cbreak;help;enable' {
            break
        }
        'cbreak;help;list' {
            break
        }
        'cbreak;help;forget' {
            break
        }
        'cbreak;help;metrics' {
            break
        }
        'cbreak;help;name' {
            break
        }
        'cbreak;help;completions' {
            break
        }
        'cbreak;help;man' {
            break
        }
        'cbreak;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
