//! User presence (FIDO U2F raw message formats v1.2, sections 4.1 and 5.1; `DESIGN.md`, "User
//! presence").
//!
//! A request that needs presence and has none gets `0x6985` at once and the host retries; a touch is
//! consumed by one operation. The [`Button`] is the token's physical button: shared, so that a
//! terminal prompt or the `vu2f touch NAME` control command can press it while the engine runs.
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a press stays valid when no operation consumes it (real keys keep about 10 s).
pub const TOUCH_VALIDITY: Duration = Duration::from_secs(10);

/// Where a token's presence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresencePolicy {
    /// Always present: every operation is touched.
    Auto,
    /// Never touched by the policy (a press of the button still counts). As built-in UV
    /// (`--uv deny`): a finger that never matches, each attempt spending one of uvRetries
    /// (`crate::ctap2::built_in_uv`).
    Deny,
    /// The touch comes this long after the first request that asks for it.
    Delay(Duration),
    /// Ask on the terminal.
    Prompt,
    /// Wait for `vu2f touch NAME`.
    Touch,
}

impl FromStr for PresencePolicy {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(Self::Auto),
            "deny" => Ok(Self::Deny),
            "prompt" => Ok(Self::Prompt),
            "touch" => Ok(Self::Touch),
            _ => text
                .strip_prefix("delay:")
                .and_then(|ms| ms.parse::<u64>().ok())
                .map(|ms| Self::Delay(Duration::from_millis(ms)))
                .ok_or_else(|| {
                    format!("unknown presence policy {text:?}: use auto, deny, delay:MS, prompt or touch")
                }),
        }
    }
}

impl std::fmt::Display for PresencePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Deny => f.write_str("deny"),
            Self::Delay(d) => write!(f, "delay:{}", d.as_millis()),
            Self::Prompt => f.write_str("prompt"),
            Self::Touch => f.write_str("touch"),
        }
    }
}

#[derive(Default)]
struct ButtonState {
    pressed_at: Option<Instant>,
    waiting: bool,
}

/// A token's button, shared between the engine and whatever presses it.
#[derive(Default)]
pub struct Button {
    state: Mutex<ButtonState>,
    request: Condvar,
}

impl Button {
    /// Presses the button now.
    pub fn press(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.pressed_at = Some(Instant::now());
            state.waiting = false;
        }
    }

    /// Blocks until an operation waits for a touch, or `timeout` passes. True when one waits.
    pub fn wait_for_request(&self, timeout: Duration) -> bool {
        let Ok(state) = self.state.lock() else {
            return false;
        };
        self.request
            .wait_timeout_while(state, timeout, |s| !s.waiting)
            .map(|(s, _)| s.waiting)
            .unwrap_or(false)
    }

    fn take_press(&self, now: Instant) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        match state.pressed_at.take() {
            Some(at) if now.saturating_duration_since(at) <= TOUCH_VALIDITY => true,
            _ => {
                if !state.waiting {
                    state.waiting = true;
                    self.request.notify_all();
                }
                false
            }
        }
    }

    fn settle(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.waiting = false;
        }
    }

    /// Lets go, as at power-up: a press not consumed yet is forgotten, and nothing waits.
    fn release(&self) {
        if let Ok(mut state) = self.state.lock() {
            *state = ButtonState::default();
        }
    }
}

/// A token's presence: its policy and its button.
pub struct Presence {
    policy: PresencePolicy,
    button: Arc<Button>,
    delay_started: Option<Instant>,
}

impl Presence {
    /// Presence under `policy` with a fresh button.
    pub fn new(policy: PresencePolicy) -> Self {
        Self {
            policy,
            button: Arc::default(),
            delay_started: None,
        }
    }

    /// Presence under `policy` on an existing button: built-in user verification shares the
    /// token's button, as a fingerprint sensor is the key's touch area.
    pub fn with_button(policy: PresencePolicy, button: Arc<Button>) -> Self {
        Self {
            policy,
            button,
            delay_started: None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> PresencePolicy {
        self.policy
    }

    /// Answers under `policy` from now on (the automation API's switches); a delay starts
    /// afresh at the next request.
    pub fn set_policy(&mut self, policy: PresencePolicy) {
        self.policy = policy;
        self.delay_started = None;
    }

    /// The button, to press from elsewhere.
    pub fn button(&self) -> &Arc<Button> {
        &self.button
    }

    /// Gives up waiting (the host cancelled): a delay starts afresh at the next request, and a
    /// prompt stops asking.
    pub fn abandon(&mut self) {
        self.delay_started = None;
        self.button.settle();
    }

    /// The token lost power and got it back (`vu2f replug`): a touch given before does not count
    /// after, and a delay starts afresh at the next request.
    pub fn power_cycle(&mut self) {
        self.delay_started = None;
        self.button.release();
    }

    /// Whether every operation is touched at once (`auto`): no caller ever waits.
    pub fn answers_at_once(&self) -> bool {
        self.policy == PresencePolicy::Auto
    }

    /// Consumes a touch if one is there now. False means: answer `0x6985`, the host will retry.
    pub fn take(&mut self, now: Instant) -> bool {
        let touched = match self.policy {
            PresencePolicy::Auto => true,
            PresencePolicy::Delay(delay) => {
                let started = *self.delay_started.get_or_insert(now);
                now.saturating_duration_since(started) >= delay || self.button.take_press(now)
            }
            PresencePolicy::Deny | PresencePolicy::Prompt | PresencePolicy::Touch => {
                self.button.take_press(now)
            }
        };
        if touched {
            self.delay_started = None;
            self.button.settle();
        }
        touched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print() {
        for text in ["auto", "deny", "delay:250", "prompt", "touch"] {
            assert_eq!(text.parse::<PresencePolicy>().unwrap().to_string(), text);
        }
        assert!("delay:x".parse::<PresencePolicy>().is_err());
        assert!("sometimes".parse::<PresencePolicy>().is_err());
    }

    #[test]
    fn delay_comes_after_the_first_request_and_is_consumed() {
        let mut presence = Presence::new(PresencePolicy::Delay(Duration::from_millis(300)));
        let t0 = Instant::now();
        assert!(!presence.take(t0));
        assert!(!presence.take(t0 + Duration::from_millis(299)));
        assert!(presence.take(t0 + Duration::from_millis(300)));
        // Consumed: the next operation waits its own delay.
        assert!(!presence.take(t0 + Duration::from_millis(301)));
        assert!(presence.take(t0 + Duration::from_millis(601)));
    }

    #[test]
    fn a_press_is_consumed_by_one_operation() {
        let mut presence = Presence::new(PresencePolicy::Touch);
        assert!(!presence.take(Instant::now()));
        assert!(
            presence.button().wait_for_request(Duration::ZERO),
            "a request is waiting"
        );
        presence.button().press();
        assert!(presence.take(Instant::now()));
        assert!(!presence.take(Instant::now()));
    }

    #[test]
    fn deny_never_touches_on_its_own_and_auto_always_does() {
        let mut deny = Presence::new(PresencePolicy::Deny);
        let mut auto = Presence::new(PresencePolicy::Auto);
        for _ in 0..3 {
            assert!(!deny.take(Instant::now()));
            assert!(auto.take(Instant::now()));
        }
    }

    #[test]
    fn a_press_before_a_power_cycle_does_not_count_after_it() {
        let mut touch = Presence::new(PresencePolicy::Touch);
        touch.button().press();
        touch.power_cycle();
        assert!(!touch.take(Instant::now()));
        touch.button().press();
        assert!(touch.take(Instant::now()), "a press after it counts");

        let mut delay = Presence::new(PresencePolicy::Delay(Duration::from_millis(300)));
        let t0 = Instant::now();
        assert!(!delay.take(t0));
        delay.power_cycle();
        assert!(
            !delay.take(t0 + Duration::from_millis(300)),
            "the delay starts afresh"
        );
        assert!(delay.take(t0 + Duration::from_millis(600)));
    }

    #[test]
    fn a_power_cycle_ends_the_wait_for_a_touch() {
        let mut presence = Presence::new(PresencePolicy::Touch);
        assert!(!presence.take(Instant::now()));
        presence.power_cycle();
        assert!(!presence.button().wait_for_request(Duration::ZERO));
    }

    #[test]
    fn a_policy_set_later_answers_the_next_request() {
        let mut presence = Presence::new(PresencePolicy::Auto);
        assert!(presence.take(Instant::now()));
        presence.set_policy(PresencePolicy::Deny);
        assert_eq!(presence.policy(), PresencePolicy::Deny);
        assert!(!presence.take(Instant::now()));
        presence.set_policy(PresencePolicy::Auto);
        assert!(presence.take(Instant::now()));
    }

    #[test]
    fn a_stale_press_does_not_count() {
        let mut presence = Presence::new(PresencePolicy::Touch);
        presence.button().press();
        assert!(!presence.take(Instant::now() + TOUCH_VALIDITY + Duration::from_secs(1)));
    }
}
