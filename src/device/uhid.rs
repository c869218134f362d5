//! A token as a Linux HID device, through `/dev/uhid` (kernel `Documentation/hid/uhid.rst`;
//! `DESIGN.md`, "Contracts": `vu2f serve --uhid`): the kernel shows it as `/dev/hidrawN` with the
//! FIDO report descriptor, and every host stack takes it for a U2F key.
//!
//! uhid speaks in fixed-size events (`struct uhid_event` of `linux/uhid.h`, packed: a `u32`
//! type, then a union). Events to the kernel are encoded by `uhid-virt`. Events from the kernel
//! are decoded here, from their documented offsets, so that nothing the kernel sends can panic:
//!
//! ```text
//!  UHID_OUTPUT (6)       type:u32 | data[4096] | size:u16 | rtype:u8      an output report
//!  UHID_GET_REPORT (9)   type:u32 | id:u32 | rnum:u8 | rtype:u8           answered EIO
//!  UHID_SET_REPORT (13)  type:u32 | id:u32 | rnum:u8 | rtype:u8 | …       answered EIO
//!  START, STOP, OPEN, CLOSE                                               nothing to do
//! ```
//! The device lives as long as its file: dropping a [`UhidDevice`] (or the process dying, even by
//! `kill -9`) destroys it and its hidraw node.
//!
//! [`UhidServer`] runs every device of a process on one thread: one `poll` over all the files, a
//! stop signal and a request signal, with the CTAPHID timeouts as the poll's timeout. Other
//! threads reach it through a [`UhidHandle`], whose requests it takes between two polls:
//!
//! ```text
//!  add NAME device hid   serve one more device (the automation API's new authenticators)
//!  remove NAME           destroy the device (its hidraw node goes); answered once it is gone
//!  replug NAME           (`vu2f replug NAME`, through a [`UhidPlug`]) destroy the device, power-
//!                        cycle its CTAPHID state, create it anew with the same name and uniq:
//!                        the kernel removes the old hidraw node and makes a new one
//! ```
//! It serves until stopped, with no device at all if none is left.
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use uhid_virt::{Bus, CreateParams, InputEvent, UHID_EVENT_SIZE};

use tokio::sync::oneshot;

use super::replug::{Plug, ReplugRequest};
use super::report_descriptor::{FIDO_U2F, PRODUCT_ID, VENDOR_ID};
use crate::hid::{CtapHid, MessageHandler};

/// Where the kernel's uhid interface is.
pub const UHID_PATH: &str = "/dev/uhid";
/// How long the kernel may take to show a new device's hidraw node.
pub const HIDRAW_APPEARS: Duration = Duration::from_secs(10);

const UHID_OUTPUT: u32 = 6;
const UHID_GET_REPORT: u32 = 9;
const UHID_SET_REPORT: u32 = 13;
const UHID_DATA_MAX: usize = 4096;
/// `EIO`: the answer to feature report requests, which a FIDO token does not have.
const EIO: u16 = 5;

/// Why a device could not be created.
#[derive(Debug, thiserror::Error)]
pub enum UhidError {
    /// `/dev/uhid` does not exist.
    #[error("{0} does not exist: load the uhid module (`sudo modprobe uhid`); the kernel needs CONFIG_UHID")]
    Missing(PathBuf),
    /// `/dev/uhid` is not writable by this user.
    #[error("{0} is not writable by this user: run scripts/setup-uhid.sh once (a udev rule and the group uhid), or run as root")]
    Denied(PathBuf),
    /// Anything else.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// What the kernel sent.
#[derive(Debug, PartialEq, Eq)]
enum KernelEvent<'a> {
    Output(&'a [u8]),
    GetReport { id: u32 },
    SetReport { id: u32 },
    Other,
}

fn u32_at(event: &[u8], offset: usize) -> Option<u32> {
    let bytes = event.get(offset..offset + 4)?;
    Some(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn parse(event: &[u8]) -> KernelEvent<'_> {
    match u32_at(event, 0) {
        Some(UHID_OUTPUT) => {
            let size = event
                .get(4 + UHID_DATA_MAX..4 + UHID_DATA_MAX + 2)
                .map(|b| usize::from(u16::from_ne_bytes([b[0], b[1]])))
                .unwrap_or(0);
            match event.get(4..4 + size.min(UHID_DATA_MAX)) {
                Some(data) => KernelEvent::Output(data),
                None => KernelEvent::Other,
            }
        }
        Some(UHID_GET_REPORT) => match u32_at(event, 4) {
            Some(id) => KernelEvent::GetReport { id },
            None => KernelEvent::Other,
        },
        Some(UHID_SET_REPORT) => match u32_at(event, 4) {
            Some(id) => KernelEvent::SetReport { id },
            None => KernelEvent::Other,
        },
        _ => KernelEvent::Other,
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncated(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// One virtual U2F HID device.
pub struct UhidDevice {
    file: File,
    /// What it was made with, to make it again.
    uhid: PathBuf,
    token: String,
    uniq: String,
}

impl UhidDevice {
    /// Creates a device named after `token` through `uhid` (normally [`UHID_PATH`]). `uniq`
    /// tells it apart from every other device (its hidraw node is found by it).
    pub fn create(uhid: &Path, token: &str, uniq: &str) -> Result<Self, UhidError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(uhid)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => UhidError::Missing(uhid.to_owned()),
                std::io::ErrorKind::PermissionDenied => UhidError::Denied(uhid.to_owned()),
                _ => UhidError::Io {
                    path: uhid.to_owned(),
                    source: e,
                },
            })?;
        let uniq = truncated(uniq, 63);
        let params = CreateParams {
            name: truncated(&format!("vu2f {token}"), 127),
            phys: truncated(&format!("vu2f/{token}"), 63),
            uniq: uniq.clone(),
            bus: Bus::USB,
            vendor: VENDOR_ID,
            product: PRODUCT_ID,
            version: 0,
            country: 0,
            rd_data: FIDO_U2F.to_vec(),
        };
        let device = Self {
            file,
            uhid: uhid.to_owned(),
            token: token.to_owned(),
            uniq,
        };
        device
            .send(InputEvent::Create(params))
            .map_err(|source| UhidError::Io {
                path: uhid.to_owned(),
                source,
            })?;
        Ok(device)
    }

    fn send(&self, event: InputEvent<'_>) -> std::io::Result<()> {
        let bytes: [u8; UHID_EVENT_SIZE] = event.into();
        (&self.file).write_all(&bytes)
    }

    /// What tells the device apart from every other (its hidraw node is found by it).
    pub fn uniq(&self) -> &str {
        &self.uniq
    }

    /// Unplugs the device and plugs it in again: destroyed first (the kernel removes its hidraw
    /// node at once), then created with the same name and uniq (a new node follows).
    pub fn replug(self) -> Result<Self, UhidError> {
        let (uhid, token, uniq) = (self.uhid.clone(), self.token.clone(), self.uniq.clone());
        drop(self);
        Self::create(&uhid, &token, &uniq)
    }

    /// Reads and answers every event the kernel has queued.
    fn drain<H: MessageHandler>(
        &self,
        hid: &mut CtapHid<H>,
        event: &mut [u8],
    ) -> std::io::Result<()> {
        loop {
            let read = match (&self.file).read(event) {
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            match parse(&event[..read]) {
                KernelEvent::Output(report) => {
                    for reply in hid.handle_report(report, Instant::now()) {
                        self.send(InputEvent::Input { data: &reply })?;
                    }
                }
                KernelEvent::GetReport { id } => self.send(InputEvent::GetReportReply {
                    id,
                    err: EIO,
                    data: Vec::new(),
                })?,
                KernelEvent::SetReport { id } => {
                    self.send(InputEvent::SetReportReply { id, err: EIO })?
                }
                KernelEvent::Other => {}
            }
        }
    }

    fn expire<H: MessageHandler>(&self, hid: &mut CtapHid<H>) -> std::io::Result<()> {
        for reply in hid.poll(Instant::now()) {
            self.send(InputEvent::Input { data: &reply })?;
        }
        Ok(())
    }
}

/// Counts one up on an eventfd: wakes the poll that watches it.
fn signal(eventfd: &OwnedFd) {
    let _ = rustix::io::write(eventfd, &1u64.to_ne_bytes());
}

/// Stops a running [`UhidServer`] from another thread.
#[derive(Clone)]
pub struct StopHandle(Arc<OwnedFd>);

impl StopHandle {
    /// Asks the server to destroy its devices and return.
    pub fn stop(&self) {
        signal(&self.0);
    }
}

/// What another thread asks of a running [`UhidServer`].
enum Request<H: MessageHandler> {
    /// Serve this device of this token too.
    Add(String, UhidDevice, Box<CtapHid<H>>),
    /// Destroy the token's device; answered once it is gone.
    Remove(String, oneshot::Sender<()>),
    /// Unplug the token's device and plug it in again.
    Replug(String, ReplugRequest),
}

/// The way into a running [`UhidServer`] from other threads: devices added and removed while it
/// runs, and plugs to replug them.
pub struct UhidHandle<H: MessageHandler> {
    requests: Sender<Request<H>>,
    wake: Arc<OwnedFd>,
}

impl<H: MessageHandler> Clone for UhidHandle<H> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
            wake: Arc::clone(&self.wake),
        }
    }
}

impl<H: MessageHandler> UhidHandle<H> {
    /// Hands `request` to the server. A server that returned dropped its receiver: the request
    /// is dropped (a waiting caller hears of it), and false says so.
    fn send(&self, request: Request<H>) -> bool {
        let sent = self.requests.send(request).is_ok();
        if sent {
            signal(&self.wake);
        }
        sent
    }

    /// Serves `device` of `token` from now on, with `hid` (a server that returned drops it,
    /// and the device with it: false).
    pub fn add(&self, token: &str, device: UhidDevice, hid: CtapHid<H>) -> bool {
        self.send(Request::Add(token.to_owned(), device, Box::new(hid)))
    }

    /// Destroys the device of `token`: its hidraw node goes. The answer comes once it is gone
    /// (dropped unanswered: the server no longer runs, and its devices are gone too).
    pub fn remove(&self, token: &str) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        self.send(Request::Remove(token.to_owned(), sender));
        receiver
    }

    /// What replugs the device of `token` (`vu2f replug`).
    pub fn plug(&self, token: &str) -> UhidPlug<H> {
        UhidPlug {
            token: token.to_owned(),
            handle: self.clone(),
        }
    }
}

/// Replugs one token's device of a running [`UhidServer`] from another thread.
pub struct UhidPlug<H: MessageHandler> {
    token: String,
    handle: UhidHandle<H>,
}

impl<H: MessageHandler + Send> Plug for UhidPlug<H> {
    fn replug(&self, request: ReplugRequest) {
        self.handle
            .send(Request::Replug(self.token.clone(), request));
    }
}

/// What woke the server's poll.
#[derive(Default)]
struct Woken {
    stop: bool,
    requests: bool,
    /// Per device: the kernel has sent something.
    ready: Vec<bool>,
}

/// Every uhid device of the process, served from one thread.
pub struct UhidServer<H: MessageHandler> {
    devices: Vec<(String, UhidDevice, CtapHid<H>)>,
    stop: Arc<OwnedFd>,
    wake: Arc<OwnedFd>,
    requests: Receiver<Request<H>>,
    requester: Sender<Request<H>>,
    /// How long the kernel may take to show a device's hidraw node.
    hidraw_appears: Duration,
}

impl<H: MessageHandler> UhidServer<H> {
    /// A server of `devices`, each named by its token (none: devices come later, through
    /// [`Self::handle`]).
    pub fn new(devices: Vec<(String, UhidDevice, CtapHid<H>)>) -> std::io::Result<Self> {
        let stop = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?;
        let wake = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?;
        let (requester, requests) = std::sync::mpsc::channel();
        Ok(Self {
            devices,
            stop: Arc::new(stop),
            wake: Arc::new(wake),
            requests,
            requester,
            hidraw_appears: HIDRAW_APPEARS,
        })
    }

    /// What stops [`UhidServer::run`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(Arc::clone(&self.stop))
    }

    /// The way in from other threads, once [`UhidServer::run`] runs.
    pub fn handle(&self) -> UhidHandle<H> {
        UhidHandle {
            requests: self.requester.clone(),
            wake: Arc::clone(&self.wake),
        }
    }

    /// Serves until stopped, with or without devices; then every device is destroyed. A device
    /// that fails is destroyed alone, and the others go on.
    pub fn run(mut self) {
        let mut event = vec![0u8; UHID_EVENT_SIZE];
        loop {
            let woken = match self.wait() {
                Ok(woken) => woken,
                Err(e) => {
                    tracing::error!("uhid poll failed: {e}");
                    return;
                }
            };
            if woken.stop {
                return;
            }
            self.serve(&woken.ready, &mut event);
            if woken.requests {
                self.take_requests();
            }
        }
    }

    /// When the next CTAPHID timeout of any device is due, from `now`.
    fn timeout(&self, now: Instant) -> Option<Timespec> {
        self.devices
            .iter()
            .filter_map(|(_, _, hid)| hid.next_deadline())
            .min()
            .map(|deadline| {
                let left = deadline.saturating_duration_since(now);
                Timespec {
                    tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                    tv_nsec: i64::from(left.subsec_nanos()),
                }
            })
    }

    /// Polls the stop and request signals and every device until one has something, or the next
    /// timeout. Interrupted by a signal, it says that nothing woke it.
    fn wait(&self) -> rustix::io::Result<Woken> {
        let timeout = self.timeout(Instant::now());
        let mut fds = Vec::with_capacity(self.devices.len() + 2);
        fds.push(PollFd::new(&*self.stop, PollFlags::IN));
        fds.push(PollFd::new(&*self.wake, PollFlags::IN));
        for (_, device, _) in &self.devices {
            fds.push(PollFd::new(&device.file, PollFlags::IN));
        }
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(Woken::default()),
            Err(e) => return Err(e),
        }
        let woke = |fd: &PollFd| !fd.revents().is_empty();
        Ok(Woken {
            stop: woke(&fds[0]),
            requests: woke(&fds[1]),
            ready: fds[2..].iter().map(woke).collect(),
        })
    }

    /// Answers what the ready devices sent and sends what timeouts are due.
    fn serve(&mut self, ready: &[bool], event: &mut [u8]) {
        let mut failed = Vec::new();
        for (index, (name, device, hid)) in self.devices.iter_mut().enumerate() {
            let result = if ready.get(index).copied().unwrap_or(false) {
                device.drain(hid, event)
            } else {
                Ok(())
            };
            if let Err(e) = result.and_then(|()| device.expire(hid)) {
                eprintln!("vu2f: token {name}: uhid device failed, destroying it: {e}");
                failed.push(index);
            }
        }
        for index in failed.into_iter().rev() {
            self.devices.remove(index);
        }
    }

    /// Does every request waiting.
    fn take_requests(&mut self) {
        let mut count = [0u8; 8];
        // Reading resets the eventfd; the requests are all taken below.
        let _ = rustix::io::read(&*self.wake, &mut count);
        while let Ok(request) = self.requests.try_recv() {
            match request {
                Request::Add(token, device, hid) => self.devices.push((token, device, *hid)),
                Request::Remove(token, done) => {
                    self.devices.retain(|(name, _, _)| *name != token);
                    let _ = done.send(());
                }
                Request::Replug(token, request) => self.replug(&token, request),
            }
        }
    }

    /// Destroys `token`'s device, power-cycles its CTAPHID state, and creates it anew; the
    /// request is answered once the kernel shows the new hidraw node. A device that cannot be
    /// made again is gone, and the request says why.
    fn replug(&mut self, token: &str, request: ReplugRequest) {
        let Some(index) = self.devices.iter().position(|(name, _, _)| name == token) else {
            return request.answer(Err(format!(
                "token {token} has no uhid device (it failed, or was removed)"
            )));
        };
        let (name, device, mut hid) = self.devices.remove(index);
        hid.power_cycle();
        match device.replug() {
            Ok(device) => {
                let uniq = device.uniq.clone();
                self.devices.insert(index, (name, device, hid));
                answer_once_shown(uniq, self.hidraw_appears, request);
            }
            Err(e) => {
                let message = format!("token {name}: the uhid device could not be made again: {e}");
                eprintln!("vu2f: {message}");
                request.answer(Err(message));
            }
        }
    }
}

/// Answers `request` once the hidraw node of `uniq` shows (within `timeout`), from a thread of
/// its own: the server's thread goes on serving meanwhile.
fn answer_once_shown(uniq: String, timeout: Duration, request: ReplugRequest) {
    std::thread::spawn(move || {
        request.answer(
            wait_for_usable_hidraw(&uniq, timeout)
                .map(drop)
                .ok_or_else(|| format!("the kernel made no new hidraw node within {timeout:?}")),
        );
    });
}

/// The hidraw node of `uniq` once the kernel has made it and this process can open it (within
/// `timeout`, the node is returned even if it is not usable yet); `None` when none shows.
pub fn wait_for_usable_hidraw(uniq: &str, timeout: Duration) -> Option<PathBuf> {
    let deadline = Instant::now() + timeout;
    let shown = wait_for_hidraw(uniq, timeout)?;
    wait_until_usable(&shown, deadline);
    Some(shown)
}

/// Waits (until `deadline` at most) for this process to be able to open `node` for reading and
/// writing: udev gives a new node its group and mode a moment after the kernel makes it, and a
/// host of the same user that opens it as soon as `vu2f replug` returns must find it usable.
/// Opening it costs the device an OPEN and a CLOSE event, which it ignores.
fn wait_until_usable(node: &Path, deadline: Instant) {
    while OpenOptions::new()
        .read(true)
        .write(true)
        .open(node)
        .is_err()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for UhidDevice {
    fn drop(&mut self) {
        // Closing the file destroys the device too; saying so first is the documented way.
        let _ = self.send(InputEvent::Destroy);
    }
}

/// The hidraw node whose HID device has `uniq` (from `/sys/class/hidraw/*/device/uevent`).
pub fn find_hidraw(uniq: &str) -> Option<PathBuf> {
    let wanted = format!("HID_UNIQ={uniq}");
    for entry in std::fs::read_dir("/sys/class/hidraw").ok()?.flatten() {
        let uevent =
            std::fs::read_to_string(entry.path().join("device/uevent")).unwrap_or_default();
        if uevent.lines().any(|line| line == wanted) {
            let node = Path::new("/dev").join(entry.file_name());
            if node.exists() {
                return Some(node);
            }
        }
    }
    None
}

/// The hidraw node of `uniq` once the kernel has made it; `None` after `timeout`.
pub fn wait_for_hidraw(uniq: &str, timeout: Duration) -> Option<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(node) = find_hidraw(uniq) {
            return Some(node);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u32) -> Vec<u8> {
        let mut event = vec![0u8; UHID_EVENT_SIZE];
        event[..4].copy_from_slice(&kind.to_ne_bytes());
        event
    }

    #[test]
    fn an_output_report_is_read_from_its_documented_offsets() {
        let mut output = event(UHID_OUTPUT);
        output[4..4 + 65].copy_from_slice(&[7u8; 65]);
        output[4 + UHID_DATA_MAX..4 + UHID_DATA_MAX + 2].copy_from_slice(&65u16.to_ne_bytes());
        assert_eq!(parse(&output), KernelEvent::Output(&[7u8; 65]));
    }

    #[test]
    fn report_requests_and_nonsense_do_not_panic() {
        let mut get = event(UHID_GET_REPORT);
        get[4..8].copy_from_slice(&42u32.to_ne_bytes());
        assert_eq!(parse(&get), KernelEvent::GetReport { id: 42 });
        let mut huge = event(UHID_OUTPUT);
        huge[4 + UHID_DATA_MAX..4 + UHID_DATA_MAX + 2].copy_from_slice(&u16::MAX.to_ne_bytes());
        assert_eq!(
            parse(&huge),
            KernelEvent::Output(&huge[4..4 + UHID_DATA_MAX])
        );
        for short in [&[][..], &[6, 0], &event(UHID_OUTPUT)[..10], &event(99)] {
            let _ = parse(short);
        }
        assert_eq!(parse(&event(99)), KernelEvent::Other);
    }

    #[test]
    fn a_missing_uhid_is_explained() {
        let error = UhidDevice::create(Path::new("/nonexistent/uhid"), "t", "u")
            .err()
            .unwrap();
        assert!(error.to_string().contains("modprobe uhid"), "{error}");
    }

    struct Quiet;
    impl MessageHandler for Quiet {
        fn handle_message(&mut self, _apdu: &[u8], _now: Instant) -> Vec<u8> {
            Vec::new()
        }
    }

    /// A FIFO stands in for `/dev/uhid`: it takes a device's events (and gives them back, which
    /// the server reads as events of no interest), but no kernel makes a hidraw node.
    fn fake_uhid(dir: &Path) -> PathBuf {
        use rustix::fs::{FileType, Mode, CWD};
        let path = dir.join("uhid");
        rustix::fs::mknodat(CWD, &path, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
        path
    }

    /// A server of token `t` on `uhid`, on its thread.
    fn serving(uhid: &Path) -> (UhidPlug<Quiet>, StopHandle, std::thread::JoinHandle<()>) {
        let device = UhidDevice::create(uhid, "t", "vu2f:test").unwrap();
        let mut server = UhidServer::new(vec![("t".into(), device, CtapHid::new(Quiet))]).unwrap();
        server.hidraw_appears = Duration::from_millis(50);
        let (plug, stop) = (server.handle().plug("t"), server.stop_handle());
        (plug, stop, std::thread::spawn(move || server.run()))
    }

    /// Replugs through `plug`; the answer, `dropped`, or after 5 s `no answer`.
    fn replug(plug: &UhidPlug<Quiet>) -> Result<(), String> {
        use tokio::sync::oneshot::error::TryRecvError;
        let (request, mut answer) = ReplugRequest::new();
        plug.replug(request);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match answer.try_recv() {
                Ok(result) => return result,
                Err(TryRecvError::Closed) => return Err("dropped".into()),
                Err(TryRecvError::Empty) if Instant::now() >= deadline => {
                    return Err("no answer".into())
                }
                Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// The device is made again and served on: a second replug finds it. Without a kernel, no
    /// node shows, and the answer says so. A stopped server drops the request.
    #[test]
    fn a_replug_makes_the_device_again_on_the_server_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (plug, stop, thread) = serving(&fake_uhid(dir.path()));
        for _ in 0..2 {
            let answer = replug(&plug).unwrap_err();
            assert!(
                answer.contains("no new hidraw node within 50ms"),
                "{answer}"
            );
        }
        stop.stop();
        thread.join().unwrap();
        assert_eq!(replug(&plug), Err("dropped".into()));
    }

    /// A device that cannot be made again is reported to the caller and gone; the server, with
    /// no device left, runs on until stopped.
    #[test]
    fn a_device_that_cannot_be_made_again_is_reported_and_gone() {
        let dir = tempfile::tempdir().unwrap();
        let uhid = fake_uhid(dir.path());
        let (plug, stop, thread) = serving(&uhid);
        std::fs::remove_file(&uhid).unwrap();
        let answer = replug(&plug).unwrap_err();
        assert!(
            answer.starts_with("token t: the uhid device could not be made again: ")
                && answer.contains("does not exist"),
            "{answer}"
        );
        let gone = replug(&plug).unwrap_err();
        assert!(gone.contains("has no uhid device"), "{gone}");
        assert!(!thread.is_finished(), "the server runs on without devices");
        stop.stop();
        thread.join().unwrap();
    }

    /// A server that starts with no device serves one added while it runs (a replug reaches
    /// it), and a removed one is destroyed before the answer, and is no longer served.
    #[test]
    fn devices_come_and_go_while_the_server_runs() {
        let dir = tempfile::tempdir().unwrap();
        let uhid = fake_uhid(dir.path());
        let mut server = UhidServer::<Quiet>::new(Vec::new()).unwrap();
        server.hidraw_appears = Duration::from_millis(50);
        let (handle, stop) = (server.handle(), server.stop_handle());
        let thread = std::thread::spawn(move || server.run());
        let plug = handle.plug("t");
        let absent = replug(&plug).unwrap_err();
        assert!(absent.contains("has no uhid device"), "{absent}");
        let device = UhidDevice::create(&uhid, "t", "vu2f:test:added").unwrap();
        assert_eq!(device.uniq(), "vu2f:test:added");
        assert!(handle.add("t", device, CtapHid::new(Quiet)));
        let served = replug(&plug).unwrap_err();
        assert!(
            served.contains("no new hidraw node within 50ms"),
            "{served}"
        );
        handle
            .remove("t")
            .blocking_recv()
            .expect("the removal is answered");
        let gone = replug(&plug).unwrap_err();
        assert!(gone.contains("has no uhid device"), "{gone}");
        stop.stop();
        thread.join().unwrap();
        assert!(!handle.add(
            "late",
            UhidDevice::create(&uhid, "late", "vu2f:test:late").unwrap(),
            CtapHid::new(Quiet)
        ));
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        assert_eq!(truncated("ééé", 3), "é");
        assert_eq!(truncated("abc", 63), "abc");
    }
}
