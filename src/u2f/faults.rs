//! Faults a test arms on a token through the automation API (`src/automation`), so that a relying
//! party's or a host's error paths can be exercised against a real device. Each is one-shot: it
//! spoils the next operation that it applies to, then disarms itself.
//!
//! ```text
//!  corrupt signature   the next signature (U2F AUTHENTICATE, CTAP2 getAssertion) is made over
//!                      the message with its last bit flipped: well-formed, and it does not verify
//!  counter             the next signature reports this counter value instead of the counter's
//!                      own; the durable counter is not touched and goes on from where it was,
//!                      so an RP sees one value that went back (or jumped)
//!  delay               the next CTAPHID MSG or CBOR answer is held this long (CBOR: with
//!                      KEEPALIVE "processing" meanwhile, as a slow key sends them)
//!  busy                the next CTAPHID MSG or CBOR request is answered ERROR CHANNEL_BUSY
//! ```
//! The signature faults wait for a signature made with the user present: hosts probe allowLists
//! with `up: false` first (python-fido2, Firefox), and a probe's signature reaches no relying
//! party. The two signature faults live in the engine (both engines sign through it); the two
//! transport faults are taken by the CTAPHID framing of whichever device the next request comes
//! through (`crate::hid::MessageHandler::take_transport_fault`).
use std::time::Duration;

/// The faults armed on one token.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Faults {
    /// Spoil the next signature.
    pub corrupt_signature: bool,
    /// Report this counter value in the next signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<u32>,
    /// Hold the next CTAPHID answer this long.
    #[serde(
        rename = "delayMs",
        skip_serializing_if = "Option::is_none",
        with = "millis"
    )]
    pub delay: Option<Duration>,
    /// Answer the next CTAPHID request CHANNEL_BUSY.
    pub busy: bool,
}

/// What the CTAPHID framing does to the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFault {
    /// Answer ERROR CHANNEL_BUSY.
    Busy,
    /// Hold the answer this long.
    Delay(Duration),
}

impl Faults {
    /// Arms every fault that `more` has, beside those armed already.
    pub fn arm(&mut self, more: &Faults) {
        self.corrupt_signature |= more.corrupt_signature;
        self.counter = more.counter.or(self.counter);
        self.delay = more.delay.or(self.delay);
        self.busy |= more.busy;
    }

    /// The counter value a signature reports: `real`, unless a counter fault is armed and the
    /// user is present (then it is disarmed).
    pub fn counter_for(&mut self, real: u32, user_present: bool) -> u32 {
        match self.counter {
            Some(value) if user_present => {
                self.counter = None;
                value
            }
            _ => real,
        }
    }

    /// `message` as a signature signs it: unchanged, unless a corrupt-signature fault is armed
    /// and the user is present (then its last bit flipped, and the fault disarmed).
    pub fn message_for<'a>(
        &mut self,
        message: &'a [u8],
        user_present: bool,
    ) -> std::borrow::Cow<'a, [u8]> {
        if !(user_present && std::mem::take(&mut self.corrupt_signature)) {
            return std::borrow::Cow::Borrowed(message);
        }
        let mut spoiled = message.to_vec();
        if let Some(last) = spoiled.last_mut() {
            *last ^= 1;
        }
        std::borrow::Cow::Owned(spoiled)
    }

    /// The transport fault for the next request, if one is armed; disarms it (busy first).
    pub fn take_transport(&mut self) -> Option<TransportFault> {
        if std::mem::take(&mut self.busy) {
            return Some(TransportFault::Busy);
        }
        self.delay.take().map(TransportFault::Delay)
    }
}

mod millis {
    use serde::Serializer;
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(
        delay: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match delay {
            Some(delay) => serializer.serialize_u64(delay.as_millis() as u64),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_spoils_one_operation_then_disarms() {
        let mut faults = Faults::default();
        faults.arm(&Faults {
            corrupt_signature: true,
            counter: Some(3),
            delay: Some(Duration::from_millis(50)),
            busy: true,
        });
        assert_eq!(faults.counter_for(9, false), 9, "a silent probe passes");
        assert_eq!(faults.message_for(&[1, 2], false).as_ref(), &[1, 2]);
        assert_eq!(faults.counter_for(10, true), 3);
        assert_eq!(faults.counter_for(11, true), 11);
        assert_eq!(faults.message_for(&[1, 2], true).as_ref(), &[1, 3]);
        assert_eq!(faults.message_for(&[1, 2], true).as_ref(), &[1, 2]);
        assert_eq!(faults.take_transport(), Some(TransportFault::Busy));
        assert_eq!(
            faults.take_transport(),
            Some(TransportFault::Delay(Duration::from_millis(50)))
        );
        assert_eq!(faults.take_transport(), None);
        assert_eq!(faults, Faults::default());
    }
}
