//! The authenticators a `vu2f serve` process serves, as they come and go while it runs: those
//! of the command line (`--token NAME`) and those the API adds.
//!
//! Each is a [`VirtualAuthenticator`]: its engine behind a [`SharedToken`], its button, the
//! keystore [`Store`] its token lives in, and its devices, each with a plug for replugs:
//!
//! ```text
//!  VirtualAuthenticator ── SharedToken (the ctap2::Authenticator, with the u2f one inside)
//!   │                       ├─► uhid device   on the UhidServer's thread (serve --uhid)
//!   │                       └─► UDP task      (serve --udp, or `udp` when added)
//!   ├─ plugs: the engine (power cycle), the uhid device, the UDP task
//!   ├─ button (`vu2f touch`, …/press)
//!   └─ store: the user's store, or the process's temporary store (ephemeral)
//! ```
//! Ephemeral tokens live in one temporary store per process ([`Store::temporary_in`], under
//! `$XDG_RUNTIME_DIR/vu2f`): removing one removes its token from it, and the whole store goes
//! when the process ends (one that a killed process left goes when the next one makes its own).
//! The others are tokens of the user's store: removing one only stops serving it.
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keystore::{Profile, Store, StoreError, TokenKeys, TokenOptions};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::error::{ApiError, ApiResult};
use crate::device::control::{Controlled, Targets};
use crate::device::replug::Plug;
use crate::device::service::ServedTokens;
use crate::device::uhid::{
    find_hidraw, wait_for_usable_hidraw, UhidDevice, UhidHandle, HIDRAW_APPEARS,
};
use crate::device::SharedToken;
use crate::hid::CtapHid;
use crate::u2f::{Button, Presence, PresencePolicy};

/// How long a removal waits for the last use of an ephemeral token to end before removing it
/// from the temporary store.
const RELEASE_PATIENCE: Duration = Duration::from_secs(10);

/// The protocol an authenticator speaks, by WebDriver's names. `ctap2` and `ctap2_1` are both
/// vu2f's CTAP 2.1 engine, whose getInfo lists FIDO_2_0 and FIDO_2_1 (and U2F_V2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// A U2F-only key (CTAP1).
    #[serde(rename = "ctap1/u2f")]
    U2f,
    /// CTAP2: the CTAP 2.1 engine.
    #[serde(rename = "ctap2")]
    Ctap2,
    /// CTAP 2.1.
    #[serde(rename = "ctap2_1")]
    Ctap21,
}

impl Protocol {
    /// The keystore profile of a token that speaks it.
    pub fn profile(self) -> Profile {
        match self {
            Self::U2f => Profile::U2f,
            Self::Ctap2 | Self::Ctap21 => Profile::Fido2,
        }
    }

    /// What a token of `profile` speaks.
    pub fn of(profile: Profile) -> Self {
        match profile {
            Profile::U2f => Self::U2f,
            Profile::Fido2 => Self::Ctap21,
        }
    }

    /// The name WebDriver gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::U2f => "ctap1/u2f",
            Self::Ctap2 => "ctap2",
            Self::Ctap21 => "ctap2_1",
        }
    }
}

/// Where an added authenticator is served over UDP besides uhid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpBinding {
    /// Any free port, on serve's `--udp` address (else 127.0.0.1).
    AnyPort,
    /// This address.
    At(SocketAddr),
}

/// An authenticator to add, as the API asked for it.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Its name (its id); `None`: one is made up.
    pub name: Option<String>,
    /// What it speaks.
    pub protocol: Protocol,
    /// In the process's temporary store, gone when removed; else a token of the user's store,
    /// made when missing.
    pub ephemeral: bool,
    /// Whether it makes discoverable credentials.
    pub resident_keys: bool,
    /// Its built-in user verification's policy; `None`: it has none.
    pub uv: Option<PresencePolicy>,
    /// Its presence policy.
    pub presence: PresencePolicy,
    /// Also served over UDP.
    pub udp: Option<UdpBinding>,
}

/// How the fleet serves what is added.
pub struct FleetSettings {
    /// The user's store, which the process holds.
    pub store: Arc<Store>,
    /// The running uhid server and the uhid interface, when serve runs with `--uhid`.
    pub uhid: Option<(UhidHandle<SharedToken>, PathBuf)>,
    /// The address of `--udp`, whose IP added authenticators with `udp: true` listen on.
    pub udp: Option<SocketAddr>,
    /// Whether a UDP address that is not loopback may be asked for.
    pub allow_remote: bool,
}

/// Which tokens are served, and which names are being added or removed right now.
#[derive(Default)]
struct Roster {
    served: BTreeMap<String, Arc<VirtualAuthenticator>>,
    busy: HashSet<String>,
}

/// The stores tokens come from: the user's, and the temporary one, made at the first ephemeral
/// token in the runtime directory.
#[derive(Clone)]
struct Stores {
    user: Arc<Store>,
    temporary: Arc<Mutex<Option<Arc<Store>>>>,
}

/// The served authenticators of a process.
pub struct Fleet {
    roster: Mutex<Roster>,
    stores: Stores,
    uhid: Option<(UhidHandle<SharedToken>, PathBuf)>,
    udp: Option<SocketAddr>,
    allow_remote: bool,
    next_device: AtomicUsize,
    next_name: AtomicUsize,
    /// The place of the next authenticator in the order of serving.
    next_order: AtomicUsize,
}

/// One served authenticator: the handle the routes act on.
pub struct VirtualAuthenticator {
    id: String,
    /// Its place in the order of serving (the command line's tokens first, in its order).
    order: usize,
    protocol: Protocol,
    ephemeral: bool,
    store: Arc<Store>,
    shared: SharedToken,
    button: Arc<Button>,
    /// The uniq of its uhid device, by which its hidraw node is found.
    uniq: Option<String>,
    udp: Option<SocketAddr>,
    udp_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    plugs: Vec<Arc<dyn Plug>>,
}

impl VirtualAuthenticator {
    /// Its id: its token's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What it speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether its token lives in the temporary store and goes with it.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// The store its token lives in (the temporary one for an ephemeral token).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Its engine as its devices share it.
    pub fn token(&self) -> &SharedToken {
        &self.shared
    }

    /// Its engine, locked (every device of it waits meanwhile: hold it briefly).
    pub fn engine(&self) -> std::sync::MutexGuard<'_, crate::ctap2::Authenticator> {
        self.shared.engine()
    }

    /// Its button.
    pub fn button(&self) -> &Arc<Button> {
        &self.button
    }

    /// Its hidraw node now (a replug makes a new one).
    pub fn hidraw(&self) -> Option<PathBuf> {
        self.uniq.as_deref().and_then(find_hidraw)
    }

    /// Its UDP address.
    pub fn udp(&self) -> Option<SocketAddr> {
        self.udp
    }

    /// What the control socket and the replug route reach of it.
    pub fn controlled(&self) -> Controlled {
        Controlled {
            button: Arc::clone(&self.button),
            plugs: self.plugs.clone(),
        }
    }

    /// Stops its UDP task, and waits until the task has dropped its engine.
    async fn stop_udp(&self) {
        let task = self
            .udp_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Fleet {
    /// A fleet with no authenticator yet.
    pub fn new(settings: FleetSettings) -> Self {
        Self {
            roster: Mutex::default(),
            stores: Stores {
                user: settings.store,
                temporary: Arc::default(),
            },
            uhid: settings.uhid,
            udp: settings.udp,
            allow_remote: settings.allow_remote,
            next_device: AtomicUsize::new(0),
            next_name: AtomicUsize::new(1),
            next_order: AtomicUsize::new(0),
        }
    }

    fn roster(&self) -> std::sync::MutexGuard<'_, Roster> {
        self.roster.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The authenticator `id`.
    pub fn get(&self, id: &str) -> ApiResult<Arc<VirtualAuthenticator>> {
        self.roster()
            .served
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::no_such_authenticator(id))
    }

    /// Every authenticator, in the order they were served.
    pub fn list(&self) -> Vec<Arc<VirtualAuthenticator>> {
        let mut list: Vec<_> = self.roster().served.values().cloned().collect();
        list.sort_by_key(|served| served.order);
        list
    }

    /// Serves `engine`, a token of the user's store loaded for `serve --token`, over UDP at
    /// `udp` too. Its uhid device is made, but its hidraw node not waited for (see
    /// [`Self::wait_for_hidraw`]): the kernel makes the nodes of many tokens at once.
    pub async fn serve_loaded(
        &self,
        engine: crate::ctap2::Authenticator,
        udp: Option<SocketAddr>,
    ) -> anyhow::Result<Arc<VirtualAuthenticator>> {
        let protocol = Protocol::of(engine.u2f().keys().profile);
        let store = Arc::clone(&self.stores.user);
        let served = self
            .start(engine, protocol, false, store, udp)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        let served = Arc::new(served);
        self.roster()
            .served
            .insert(served.id.clone(), Arc::clone(&served));
        Ok(served)
    }

    /// The hidraw node of `served`'s uhid device once the kernel has made it and it opens;
    /// `Ok(None)` without uhid.
    pub async fn wait_for_hidraw(served: &VirtualAuthenticator) -> ApiResult<Option<PathBuf>> {
        let Some(uniq) = served.uniq.clone() else {
            return Ok(None);
        };
        let node =
            tokio::task::spawn_blocking(move || wait_for_usable_hidraw(&uniq, HIDRAW_APPEARS))
                .await
                .map_err(|e| ApiError::unknown(e.to_string()))?;
        node.map(Some).ok_or_else(|| {
            ApiError::unknown(format!(
                "token {}: the kernel made no hidraw node for the uhid device within \
                 {HIDRAW_APPEARS:?}",
                served.id
            ))
        })
    }

    /// Adds the authenticator `spec` describes, answered once it is served (its hidraw node
    /// there, with uhid).
    pub async fn add(&self, spec: Spec) -> ApiResult<Arc<VirtualAuthenticator>> {
        let udp = self.udp_address(spec.udp)?;
        let name = self.reserve(spec.name.as_deref(), spec.ephemeral)?;
        let added = self.add_reserved(&name, &spec, udp).await;
        self.roster().busy.remove(&name);
        added
    }

    async fn add_reserved(
        &self,
        name: &str,
        spec: &Spec,
        udp: Option<SocketAddr>,
    ) -> ApiResult<Arc<VirtualAuthenticator>> {
        let (stores, owned) = (self.stores.clone(), name.to_owned());
        let (protocol, ephemeral) = (spec.protocol, spec.ephemeral);
        let (store, keys, created) =
            tokio::task::spawn_blocking(move || stores.keys(&owned, protocol, ephemeral))
                .await
                .map_err(|e| ApiError::unknown(e.to_string()))??;
        let u2f = crate::u2f::Authenticator::new(keys, Presence::new(spec.presence));
        let uv = match protocol {
            Protocol::U2f => None,
            Protocol::Ctap2 | Protocol::Ctap21 => spec.uv,
        };
        let mut engine = crate::ctap2::Authenticator::new(u2f, uv);
        engine.set_resident_keys(spec.resident_keys && protocol != Protocol::U2f);
        let started = match self
            .start(engine, protocol, ephemeral, Arc::clone(&store), udp)
            .await
        {
            Ok(started) => Arc::new(started),
            Err(e) => {
                forget(store, name, created).await;
                return Err(e);
            }
        };
        if let Err(e) = Self::wait_for_hidraw(&started).await {
            self.stop(started).await;
            forget(store, name, created).await;
            return Err(e);
        }
        self.roster()
            .served
            .insert(name.to_owned(), Arc::clone(&started));
        Ok(started)
    }

    /// Stops serving `id`; an ephemeral token is removed from the temporary store, with all
    /// it had. Answered once its devices are gone (its hidraw node too).
    pub async fn remove(&self, id: &str) -> ApiResult<()> {
        let served = {
            let mut roster = self.roster();
            let served = roster
                .served
                .remove(id)
                .ok_or_else(|| ApiError::no_such_authenticator(id))?;
            roster.busy.insert(id.to_owned());
            served
        };
        let (store, ephemeral) = (Arc::clone(&served.store), served.ephemeral);
        self.stop(served).await;
        let removed = if ephemeral {
            remove_when_released(store, id.to_owned()).await
        } else {
            Ok(())
        };
        self.roster().busy.remove(id);
        removed
    }

    /// Stops serving every authenticator (the process ends).
    pub async fn shutdown(&self) {
        let served = std::mem::take(&mut self.roster().served);
        for (_, served) in served {
            self.stop(served).await;
        }
    }

    /// Stops `served`'s UDP task and destroys its uhid device.
    async fn stop(&self, served: Arc<VirtualAuthenticator>) {
        served.stop_udp().await;
        if let (Some((uhid, _)), Some(_)) = (&self.uhid, &served.uniq) {
            // Dropped unanswered: the server stopped, and the device is gone with it.
            let _ = uhid.remove(&served.id).await;
        }
    }

    /// The UDP address an added authenticator asks for, checked: loopback unless serve runs
    /// with `--allow-remote`.
    fn udp_address(&self, binding: Option<UdpBinding>) -> ApiResult<Option<SocketAddr>> {
        let ip = self
            .udp
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |addr| addr.ip());
        match binding {
            None => Ok(None),
            Some(UdpBinding::AnyPort) => Ok(Some(SocketAddr::new(ip, 0))),
            Some(UdpBinding::At(addr)) if !addr.ip().is_loopback() && !self.allow_remote => {
                Err(ApiError::invalid_argument(format!(
                    "field `udp`: {addr} is not a loopback address (serve runs without \
                     --allow-remote)"
                )))
            }
            Some(UdpBinding::At(addr)) => Ok(Some(addr)),
        }
    }

    /// Takes `name` (or a new name) for an authenticator being added: no other is served or
    /// being added or removed under it.
    fn reserve(&self, name: Option<&str>, ephemeral: bool) -> ApiResult<String> {
        let mut roster = self.roster();
        let taken = |roster: &Roster, name: &str| {
            roster.served.contains_key(name) || roster.busy.contains(name)
        };
        let name = match name {
            Some(name) if taken(&roster, name) => {
                return Err(ApiError::invalid_argument(format!(
                    "field `name`: an authenticator {name:?} is served already"
                )))
            }
            Some(name) => name.to_owned(),
            None => loop {
                let n = self.next_name.fetch_add(1, Ordering::Relaxed);
                let name = format!("virtual-{n}");
                let stored = !ephemeral && self.stores.user.info(&name).is_ok();
                if !taken(&roster, &name) && !stored {
                    break name;
                }
            },
        };
        roster.busy.insert(name.clone());
        Ok(name)
    }

    /// Puts together everything that serves `engine`: its UDP socket bound and its task
    /// started, its uhid device made and handed to the uhid server, their plugs.
    async fn start(
        &self,
        engine: crate::ctap2::Authenticator,
        protocol: Protocol,
        ephemeral: bool,
        store: Arc<Store>,
        udp: Option<SocketAddr>,
    ) -> ApiResult<VirtualAuthenticator> {
        let id = engine.u2f().name().to_owned();
        let button = Arc::clone(engine.u2f().presence().button());
        let shared = SharedToken::new(engine);
        let socket = match udp {
            Some(addr) => Some(UdpSocket::bind(addr).await.map_err(|e| {
                ApiError::invalid_argument(format!("binding UDP {addr} for token {id}: {e}"))
            })?),
            None => None,
        };
        let udp = socket
            .as_ref()
            .map(UdpSocket::local_addr)
            .transpose()
            .map_err(|e| ApiError::unknown(e.to_string()))?;
        let mut plugs: Vec<Arc<dyn Plug>> = vec![Arc::new(shared.clone())];
        let mut uniq = None;
        if let Some((uhid, path)) = &self.uhid {
            let n = self.next_device.fetch_add(1, Ordering::Relaxed);
            let name = format!("vu2f:{}:{n}", std::process::id());
            let device = UhidDevice::create(path, &id, &name)
                .map_err(|e| ApiError::unknown(format!("token {id}: {e}")))?;
            uniq = Some(device.uniq().to_owned());
            if !uhid.add(&id, device, CtapHid::new(shared.clone())) {
                return Err(ApiError::unknown("the uhid server no longer runs"));
            }
            plugs.push(Arc::new(uhid.plug(&id)));
        }
        let udp_task = socket.map(|socket| {
            let (sender, replugs) = mpsc::unbounded_channel();
            plugs.push(Arc::new(sender));
            let (name, hid) = (id.clone(), CtapHid::new(shared.clone()));
            tokio::spawn(async move {
                if let Err(e) = crate::device::udp::serve(socket, hid, replugs).await {
                    eprintln!("vu2f: token {name} stopped serving UDP: {e}");
                }
            })
        });
        Ok(VirtualAuthenticator {
            id,
            order: self.next_order.fetch_add(1, Ordering::Relaxed),
            protocol,
            ephemeral,
            store,
            shared,
            button,
            uniq,
            udp,
            udp_task: Mutex::new(udp_task),
            plugs,
        })
    }
}

impl Targets for Fleet {
    fn controlled(&self, name: &str) -> Option<Controlled> {
        self.get(name).ok().map(|served| served.controlled())
    }
}

impl ServedTokens for Fleet {
    fn named(&self, name: &str) -> Option<SharedToken> {
        self.get(name).ok().map(|served| served.token().clone())
    }

    fn in_order(&self) -> Vec<SharedToken> {
        self.list()
            .iter()
            .map(|served| served.token().clone())
            .collect()
    }
}

impl Stores {
    /// The temporary store, made at the first call in the runtime directory (private, and on
    /// a tmpfs where `$XDG_RUNTIME_DIR` is set).
    fn temporary(&self) -> ApiResult<Arc<Store>> {
        let mut temporary = self.temporary.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = &*temporary {
            return Ok(Arc::clone(store));
        }
        let parent = crate::device::control::runtime_dir().map_err(|e| {
            ApiError::unknown(format!("no runtime directory for ephemeral tokens: {e}"))
        })?;
        remove_stale_temporary_stores(&parent);
        let store = Arc::new(Store::temporary_in(&parent).map_err(store_error)?);
        *temporary = Some(Arc::clone(&store));
        Ok(store)
    }

    /// The keys of token `name` speaking `protocol`: a new token of the temporary store when
    /// `ephemeral`, else the user's token of that name, made when missing. Also whether it was
    /// made now.
    fn keys(
        &self,
        name: &str,
        protocol: Protocol,
        ephemeral: bool,
    ) -> ApiResult<(Arc<Store>, TokenKeys, bool)> {
        let store = if ephemeral {
            self.temporary()?
        } else {
            Arc::clone(&self.user)
        };
        // A token made here tracks its credentials (Get Credentials lists them all, as
        // WebDriver's do); an ephemeral one also gives its keys back, being a test's alone.
        let options = TokenOptions {
            profile: protocol.profile(),
            tracks_credentials: true,
            exportable: ephemeral,
            ..TokenOptions::default()
        };
        let created = match store.info(name) {
            Ok(info) if info.profile != protocol.profile() => {
                return Err(ApiError::invalid_argument(format!(
                    "field `protocol`: token {name:?} of the store is a {} token, not {}",
                    info.profile,
                    protocol.name()
                )))
            }
            Ok(_) => false,
            Err(StoreError::NoSuchToken(_)) => {
                store.create_token(name, options).map_err(store_error)?;
                true
            }
            Err(e) => return Err(store_error(e)),
        };
        match store.load(name) {
            Ok(keys) => Ok((store, keys, created)),
            Err(e) => {
                if created {
                    let _ = store.remove(name);
                }
                Err(store_error(e))
            }
        }
    }
}

/// Removes the temporary stores in `parent` whose process no longer runs (killed before it could
/// remove its own): `ephemeral-PID-…` ([`Store::temporary_in`]) of a PID that is gone.
fn remove_stale_temporary_stores(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|name| name.strip_prefix("ephemeral-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse().ok())
            .and_then(rustix::process::Pid::from_raw);
        let gone = pid.is_some_and(|pid| {
            rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
        });
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A keystore failure as the API tells it.
fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::InvalidName(_) => ApiError::invalid_argument(format!(
            "field `name`: {error} (1 to 64 of A-Z a-z 0-9 . _ -, not starting with .)"
        )),
        StoreError::TokenBusy(name) => ApiError::invalid_argument(format!(
            "field `name`: token {name:?} is in use by this process"
        )),
        other => ApiError::unknown(other.to_string()),
    }
}

/// Removes token `name` from `store`, once nothing uses it any more (a request that held its
/// handle finishes first).
async fn remove_when_released(store: Arc<Store>, name: String) -> ApiResult<()> {
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + RELEASE_PATIENCE;
        loop {
            match store.remove(&name) {
                Ok(()) => return Ok(()),
                Err(StoreError::TokenBusy(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(store_error(e)),
            }
        }
    })
    .await
    .map_err(|e| ApiError::unknown(e.to_string()))?
}

/// Undoes an add that failed: the token made for it goes again.
async fn forget(store: Arc<Store>, name: &str, created: bool) {
    if created {
        let _ = remove_when_released(store, name.to_owned()).await;
    }
}
