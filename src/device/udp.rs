//! A token served over UDP: each datagram is one 64-byte HID report (65 with a leading report
//! number 0), each reply report goes back in its own datagram to the address that last spoke on
//! that channel (the convention of the Solo and Trezor emulators; `DESIGN.md`, "Contracts").
//!
//! There is no device to unplug: a replug power-cycles the CTAPHID state (the hosts' channels
//! become invalid) and forgets which address spoke on which channel.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::replug::ReplugRequest;
use crate::hid::{CtapHid, MessageHandler, Packet, Report, BROADCAST_CID};

/// Channels remembered per token before the table is cleared (hosts re-INIT when they stop hearing).
const MAX_REMEMBERED_CHANNELS: usize = 4096;

fn cid_of(report: &Report) -> u32 {
    u32::from_be_bytes([report[0], report[1], report[2], report[3]])
}

/// Serves one token on `socket` until the task is cancelled or the socket fails; power-cycles it
/// at each request of `replugs`.
pub async fn serve<H: MessageHandler>(
    socket: UdpSocket,
    mut hid: CtapHid<H>,
    mut replugs: mpsc::UnboundedReceiver<ReplugRequest>,
) -> std::io::Result<()> {
    let mut peers: HashMap<u32, SocketAddr> = HashMap::new();
    let mut datagram = [0u8; 1024];
    loop {
        let deadline = hid.next_deadline();
        let (replies, sender) = tokio::select! {
            received = socket.recv_from(&mut datagram) => {
                let (len, from) = received?;
                let report = &datagram[..len];
                if let Ok(packet) = Packet::try_from(report) {
                    if packet.cid() != BROADCAST_CID {
                        if peers.len() >= MAX_REMEMBERED_CHANNELS {
                            peers.clear();
                        }
                        peers.insert(packet.cid(), from);
                    }
                }
                (hid.handle_report(report, Instant::now()), Some(from))
            }
            () = super::sleep_until(deadline), if deadline.is_some() => (hid.poll(Instant::now()), None),
            Some(request) = replugs.recv() => {
                hid.power_cycle();
                peers.clear();
                request.answer(Ok(()));
                (Vec::new(), None)
            }
        };
        for reply in &replies {
            let cid = cid_of(reply);
            let peer = if cid == BROADCAST_CID {
                None
            } else {
                peers.get(&cid).copied()
            };
            let Some(to) = peer.or(sender) else { continue };
            // A host that went away must not stop the token: log and carry on.
            if let Err(e) = socket.send_to(reply, to).await {
                tracing::debug!("reply to {to} failed: {e}");
            }
        }
    }
}
