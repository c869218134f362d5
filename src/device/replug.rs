//! `vu2f replug NAME`: a served token unplugged and plugged in again, as a host sees a real key
//! pulled out and put back, so that hosts and test suites can exercise what the spec ties to
//! power-up (CTAP 2.1: channels, pending requests, the touch, and later clientPIN's state).
//!
//! Each device that serves the token has a [`Plug`], the way into the loop that owns its state.
//! The control socket hands every plug of the token a [`ReplugRequest`] at once, and answers
//! once all of them did theirs:
//!
//! ```text
//!  replug NAME ─► the engine    its power cycle (pending operation, next assertions,
//!                               touch, key cache), at once                            ─► done
//!             ─► udp task      CtapHid::power_cycle, forget the hosts' addresses     ─► done
//!             ─► uhid thread    destroy the device (its hidraw node goes), power cycle,
//!                               create it anew (same name and uniq)    ─► done once the kernel
//!                                                                        shows its new node
//!  ◄─ ok | error: MESSAGE
//! ```
//! The engine that the devices share is power-cycled once, first, by the token's own plug
//! ([`SharedToken`]); the devices' CTAPHID power cycles leave it alone. Power-cycled once per
//! device instead, a device that came back and took a host's request could lose it to another
//! device's power cycle a moment later.
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::SharedToken;

/// One device's request to unplug and plug in again; answered once the device is back. Dropped
/// unanswered, it tells that the device is no longer served.
pub struct ReplugRequest(oneshot::Sender<Result<(), String>>);

/// What a [`ReplugRequest`] gets back: `Err` says why the device is not back.
pub type Replugged = oneshot::Receiver<Result<(), String>>;

impl ReplugRequest {
    /// A request, and where its answer comes.
    pub fn new() -> (Self, Replugged) {
        let (sender, receiver) = oneshot::channel();
        (Self(sender), receiver)
    }

    /// Answers the request (nobody may wait any more: then nothing happens).
    pub fn answer(self, result: Result<(), String>) {
        let _ = self.0.send(result);
    }
}

/// The way to one device's loop, to replug it from the control socket.
pub trait Plug: Send + Sync {
    /// Hands `request` to the device, which answers it once it is back.
    fn replug(&self, request: ReplugRequest);
}

/// A task that serves a device and takes replug requests on a channel (`serve --udp`).
impl Plug for mpsc::UnboundedSender<ReplugRequest> {
    fn replug(&self, request: ReplugRequest) {
        // A stopped task drops the request, and the caller hears of it.
        let _ = self.send(request);
    }
}

/// The token's engine, shared by its devices: its power cycle, at once (the first plug of every
/// token, and the only one of a token that the Device Service alone serves).
impl Plug for SharedToken {
    fn replug(&self, request: ReplugRequest) {
        self.engine().power_cycle();
        request.answer(Ok(()));
    }
}

/// Replugs every device of a token at once; `Ok` once all are back, else the first error.
pub async fn replug_all(plugs: &[Arc<dyn Plug>]) -> Result<(), String> {
    let answers: Vec<Replugged> = plugs
        .iter()
        .map(|plug| {
            let (request, answer) = ReplugRequest::new();
            plug.replug(request);
            answer
        })
        .collect();
    for answer in answers {
        answer
            .await
            .map_err(|_| "a device of the token is no longer served".to_owned())??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Refusing;
    impl Plug for Refusing {
        fn replug(&self, request: ReplugRequest) {
            request.answer(Err("no".into()));
        }
    }

    #[tokio::test]
    async fn every_plug_is_asked_and_a_dropped_request_is_an_error() {
        let (sender, mut receiver) = mpsc::unbounded_channel::<ReplugRequest>();
        let answering = tokio::spawn(async move {
            let request = receiver.recv().await.unwrap();
            request.answer(Ok(()));
            drop(receiver.recv().await);
        });
        let plugs: Vec<Arc<dyn Plug>> = vec![Arc::new(sender.clone())];
        assert_eq!(replug_all(&plugs).await, Ok(()));
        let dropped = replug_all(&plugs).await.unwrap_err();
        assert!(dropped.contains("no longer served"), "{dropped}");
        answering.await.unwrap();
        let refusing: Vec<Arc<dyn Plug>> = vec![Arc::new(Refusing), Arc::new(sender)];
        assert_eq!(replug_all(&refusing).await, Err("no".into()));
    }
}
