//! Guard rails per agent, each with a default, a flag and a config key: turns, tool calls,
//! the same call over and over, result sizes, `Bash`'s timeout.

use serde_json::Value;
use std::time::Duration;

/// Model turns one agent may take. Why 50: a thorough review or fix takes 10–30; past 50 an
/// agent is usually going round in circles at the run's expense.
const MAX_TURNS: u32 = 50;
/// Tool calls one agent may make (a turn may make several at once).
const MAX_TOOL_CALLS: u32 = 200;
/// The same call with the same input this many times in a row ends the agent: it is looping.
pub(super) const REPEATS: u32 = 3;
/// The largest tool result handed back to the model. Why 100 KiB: ~25k tokens, a large file
/// in one piece but not a context window's worth.
const MAX_RESULT: usize = 100 * 1024;
/// `Bash`'s timeout when a call names none (Claude Code's default).
const BASH_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct Rails {
    pub max_turns: u32,
    pub max_tool_calls: u32,
    pub max_result: usize,
    pub bash_timeout: Duration,
}

impl Rails {
    pub fn from_config(cfg: &crate::config::ToolsConfig) -> anyhow::Result<Rails> {
        let max_result = match &cfg.max_result {
            Some(s) => usize::try_from(
                s.parse::<bytesize::ByteSize>()
                    .map_err(|e| {
                        crate::ExitError::usage(format!("`[tools] max_result` `{s}`: {e}"))
                            .hint("a size like 64KiB")
                    })?
                    .as_u64(),
            )
            .unwrap_or(usize::MAX)
            .max(1024),
            None => MAX_RESULT,
        };
        let bash_timeout =
            crate::config::duration(&cfg.bash_timeout, "tools.bash_timeout", BASH_TIMEOUT)?;
        if bash_timeout > super::bash::MAX_TIMEOUT {
            anyhow::bail!(
                crate::ExitError::usage(format!(
                    "a `Bash` timeout of {} is more than the 10 minutes a call may take",
                    humantime::format_duration(bash_timeout)
                ))
                .hint("`--bash-timeout 10m` at most")
            );
        }
        Ok(Rails {
            max_turns: cfg.max_turns.unwrap_or(MAX_TURNS).max(1),
            max_tool_calls: cfg.max_tool_calls.unwrap_or(MAX_TOOL_CALLS).max(1),
            max_result,
            bash_timeout,
        })
    }
}

/// What one agent has used of its rails so far.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    turns: u32,
    calls: u32,
    last: Option<(String, String)>,
    repeats: u32,
}

impl Tally {
    /// Before a model turn: `Err` ends the agent with the reason.
    pub(crate) fn turn(&mut self, rails: &Rails) -> Result<(), String> {
        if self.turns >= rails.max_turns {
            return Err(format!(
                "the agent took {} turns, the most `--max-turns` (`[tools] max_turns`) allows; raise it if the task needs more",
                self.turns
            ));
        }
        self.turns += 1;
        Ok(())
    }

    /// Before a tool call: `Err` ends the agent with the reason.
    pub(crate) fn call(&mut self, rails: &Rails, name: &str, input: &Value) -> Result<(), String> {
        if self.calls >= rails.max_tool_calls {
            return Err(format!(
                "the agent made {} tool calls, the most `--max-tool-calls` (`[tools] max_tool_calls`) allows; raise it if the task needs more",
                self.calls
            ));
        }
        self.calls += 1;
        let this = (name.to_string(), input.to_string());
        if self.last.as_ref() == Some(&this) {
            self.repeats += 1;
        } else {
            self.repeats = 1;
            self.last = Some(this);
        }
        if self.repeats >= REPEATS {
            return Err(format!(
                "the agent made the same `{name}` call with the same input {REPEATS} times in a row; it was stopped as looping"
            ));
        }
        Ok(())
    }

    pub(crate) fn turns(&self) -> u32 {
        self.turns
    }
}
