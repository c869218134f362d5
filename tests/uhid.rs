//! The token as a kernel HID device (`vu2f serve --uhid`), judged by host stacks nobody here wrote:
//! libfido2's tools, and our hidraw transport. These need a writable `/dev/uhid`: the host kernel
//! of CI has none, so `scripts/vm-test.sh` runs them in a VM with `VU2F_REQUIRE_UHID=1`, where a
//! missing `/dev/uhid` is a failure, not a skip.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use vu2f::transport::{exchange_awaiting_presence, HidrawTransport, TokenTransport};
use vu2f::u2f::authenticator::Control;
use vu2f::u2f::messages::{self, AuthenticationResponse, RegistrationResponse};

/// Whether the tests can run here; panics when they must (`VU2F_REQUIRE_UHID`) but cannot.
fn uhid_available() -> bool {
    let writable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/uhid")
        .is_ok();
    if !writable {
        assert!(
            std::env::var_os("VU2F_REQUIRE_UHID").is_none(),
            "VU2F_REQUIRE_UHID is set, but /dev/uhid cannot be opened for writing"
        );
        eprintln!("SKIPPED: /dev/uhid is not writable here; scripts/vm-test.sh runs this in a VM");
    }
    writable
}

/// A `vu2f serve --uhid` process and the hidraw node of each token; SIGKILLed on drop.
struct Served {
    process: common::Running,
    hidraw: Vec<PathBuf>,
}

impl Served {
    fn start(store: &Path, tokens: &[String]) -> Served {
        let mut command = common::vu2f(store);
        command.args(["--json", "serve", "--uhid"]);
        for token in tokens {
            command.args(["--token", token]);
        }
        let (process, lines) = common::Running::start(command, tokens.len());
        let hidraw = tokens
            .iter()
            .zip(lines)
            .map(|(token, served)| {
                assert_eq!(served["token"], token.as_str());
                PathBuf::from(served["hidraw"].as_str().unwrap())
            })
            .collect();
        Served { process, hidraw }
    }
}

/// Creates U2F tokens `names` in the store at `store`.
fn create_tokens(store: &Path, names: &[String]) {
    create_tokens_with(store, names, keystore::TokenOptions::default());
}

/// Creates tokens `names` with `options` in the store at `store`, and closes it for `serve`.
fn create_tokens_with(store: &Path, names: &[String], options: keystore::TokenOptions) {
    let store = keystore::Store::open(store).unwrap();
    store.create_tokens(names, options).unwrap();
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i:02}")).collect()
}

fn gone(nodes: &[PathBuf]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if nodes.iter().all(|n| !n.exists()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

const APP_ID: &str = "https://uhid.vu2f.test";

fn register(token: &mut dyn TokenTransport) -> RegistrationResponse {
    let app = messages::app_param(APP_ID);
    let challenge = messages::challenge_param(b"register");
    let response = token
        .exchange(&messages::register_request(&challenge, &app))
        .unwrap();
    let registration =
        RegistrationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
    registration.verify(&app, &challenge).unwrap();
    registration
}

fn authenticate(token: &mut dyn TokenTransport, registration: &RegistrationResponse) -> u32 {
    let app = messages::app_param(APP_ID);
    let challenge = messages::challenge_param(b"authenticate");
    let request = messages::authenticate_request(
        Control::EnforcePresenceAndSign,
        &challenge,
        &app,
        &registration.key_handle,
    );
    let response = exchange_awaiting_presence(
        token,
        &request,
        Duration::from_millis(50),
        Duration::from_secs(5),
    )
    .unwrap();
    let signed =
        AuthenticationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
    signed
        .verify(&app, &challenge, &registration.public_key)
        .unwrap();
    signed.counter
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// libfido2: `fido2-token -L` lists the token; `fido2-cred -M -u` makes a U2F credential that
/// `fido2-cred -V` verifies; `fido2-assert -G -u` gets an assertion that `fido2-assert -V`
/// verifies with that credential's key, and refuses once a byte of it is changed.
#[test]
fn libfido2_tools_make_and_verify_a_credential_and_an_assertion() {
    if !uhid_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tokens = names("fido2-", 1);
    create_tokens(&store, &tokens);
    let served = Served::start(&store, &tokens);
    let device = served.hidraw[0].to_str().unwrap();

    let listed = run(Command::new("fido2-token").arg("-L"));
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{device}: vendor=0x1209, product=0x0001"))),
        "{listed}"
    );

    let file = |name: &str| dir.path().join(name);
    let client_data_hash = STANDARD.encode([0x5au8; 32]);
    std::fs::write(
        file("cred_param"),
        format!(
            "{client_data_hash}\nuhid.vu2f.test\nalice\n{}\n",
            STANDARD.encode([7u8; 32])
        ),
    )
    .unwrap();
    run(Command::new("fido2-cred")
        .args(["-M", "-u", "-i"])
        .arg(file("cred_param"))
        .arg("-o")
        .arg(file("cred"))
        .arg(device));
    let made = std::fs::read_to_string(file("cred")).unwrap();
    assert_eq!(made.lines().nth(2), Some("fido-u2f"), "{made}");
    run(Command::new("fido2-cred")
        .args(["-V", "-i"])
        .arg(file("cred"))
        .arg("-o")
        .arg(file("verified")));
    let verified = std::fs::read_to_string(file("verified")).unwrap();
    let (credential_id, public_key) = verified.split_once('\n').unwrap();
    std::fs::write(file("key.pem"), public_key).unwrap();

    std::fs::write(
        file("assert_param"),
        format!("{client_data_hash}\nuhid.vu2f.test\n{credential_id}\n"),
    )
    .unwrap();
    run(Command::new("fido2-assert")
        .args(["-G", "-u", "-p", "-i"])
        .arg(file("assert_param"))
        .arg("-o")
        .arg(file("assertion"))
        .arg(device));
    run(Command::new("fido2-assert")
        .args(["-V", "-p", "-i"])
        .arg(file("assertion"))
        .arg(file("key.pem"))
        .arg("es256"));

    let assertion = std::fs::read_to_string(file("assertion")).unwrap();
    let mut lines: Vec<String> = assertion.lines().map(str::to_owned).collect();
    let mut signature = STANDARD.decode(&lines[3]).unwrap();
    *signature.last_mut().unwrap() ^= 1;
    lines[3] = STANDARD.encode(signature);
    std::fs::write(file("tampered"), lines.join("\n") + "\n").unwrap();
    let refused = Command::new("fido2-assert")
        .args(["-V", "-p", "-i"])
        .arg(file("tampered"))
        .arg(file("key.pem"))
        .arg("es256")
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "a changed signature must not verify"
    );
}

/// libfido2 as CTAP2 host of a `fido2` token: `fido2-token -I` reads getInfo; `fido2-cred -M`
/// makes ES256 and EdDSA credentials, non-resident and resident (`-r`), whose packed attestation
/// `fido2-cred -V` verifies; `fido2-assert -G` signs with each (by id, or by rp alone for a
/// resident one) and `fido2-assert -V` verifies the signature with the credential's key.
#[test]
fn libfido2_speaks_ctap2_to_a_fido2_token() {
    if !uhid_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tokens = names("ctap2-", 1);
    create_tokens_with(&store, &tokens, common::fido2_options());
    let served = Served::start(&store, &tokens);
    let device = served.hidraw[0].to_str().unwrap();

    let info = Command::new("fido2-token")
        .args(["-I", device])
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    for expected in [
        "version strings: U2F_V2, FIDO_2_0, FIDO_2_1",
        "algorithms: es256 (public-key), eddsa (public-key)",
        "extension strings: credBlob, credProtect, hmac-secret, hmac-secret-mc, largeBlobKey, \
         minPinLength",
        "maxcredlen: 162",
        "maxlargeblob: 4096",
    ] {
        assert!(info.contains(expected), "{expected:?} not in:\n{info}");
    }
    assert!(
        info.lines().any(|l| l.starts_with("options:")
            && l.contains(" rk,")
            && l.contains(" up,")
            && l.contains(" largeBlobs,")),
        "{info}"
    );

    let file = |name: &str| dir.path().join(name);
    let client_data_hash = STANDARD.encode([0x33u8; 32]);
    for (kind, resident) in [
        ("es256", false),
        ("eddsa", false),
        ("es256", true),
        ("eddsa", true),
    ] {
        let rp = format!("{kind}-{resident}.vu2f.test");
        let user_id = STANDARD.encode([u8::from(resident) + 1; 16]);
        std::fs::write(
            file("cred_param"),
            format!("{client_data_hash}\n{rp}\nalice\n{user_id}\n"),
        )
        .unwrap();
        let mut make = Command::new("fido2-cred");
        make.arg("-M");
        if resident {
            make.arg("-r");
        }
        run(make
            .arg("-i")
            .arg(file("cred_param"))
            .arg("-o")
            .arg(file("cred"))
            .args([device, kind]));
        let made = std::fs::read_to_string(file("cred")).unwrap();
        assert_eq!(made.lines().nth(2), Some("packed"), "{kind}: {made}");
        run(Command::new("fido2-cred")
            .args(["-V", "-i"])
            .arg(file("cred"))
            .arg("-o")
            .arg(file("verified"))
            .arg(kind));
        let verified = std::fs::read_to_string(file("verified")).unwrap();
        let (credential_id, public_key) = verified.split_once('\n').unwrap();
        std::fs::write(file("key.pem"), public_key).unwrap();

        let listed = if resident {
            String::new()
        } else {
            format!("{credential_id}\n")
        };
        std::fs::write(
            file("assert_param"),
            format!("{client_data_hash}\n{rp}\n{listed}"),
        )
        .unwrap();
        let mut get = Command::new("fido2-assert");
        get.args(["-G", "-p"]);
        if resident {
            get.arg("-r");
        }
        run(get
            .arg("-i")
            .arg(file("assert_param"))
            .arg("-o")
            .arg(file("assertion"))
            .args([device, kind]));
        run(Command::new("fido2-assert")
            .args(["-V", "-p", "-i"])
            .arg(file("assertion"))
            .arg(file("key.pem"))
            .arg(kind));
    }
}

/// libfido2's hmac-secret (CTAP 2.1 §12.5): `fido2-cred -M -r -h` makes a resident credential
/// with it, which `fido2-cred -V -h` verifies; `fido2-assert -G -r -h` gets the secret of a salt
/// in an assertion that `fido2-assert -V -h` verifies with the credential's key. Both outputs are
/// signed: `-V` without `-h` refuses each (libfido2 compares the extensions of the authenticator
/// data with those asked for). The same salt gives the same secret, another salt another, and
/// both salts at once (64 bytes) the two.
#[test]
fn libfido2_gets_the_hmac_secret_of_a_resident_credential() {
    if !uhid_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tokens = names("hmac-", 1);
    create_tokens_with(&store, &tokens, common::fido2_options());
    let served = Served::start(&store, &tokens);
    let device = served.hidraw[0].to_str().unwrap();

    let rp = "hmac.vu2f.test";
    let user_id = STANDARD.encode([9u8; 16]);
    let file = |name: &str| dir.path().join(name);
    let client_data_hash = STANDARD.encode([0x44u8; 32]);
    std::fs::write(
        file("cred_param"),
        format!("{client_data_hash}\n{rp}\nalice\n{user_id}\n"),
    )
    .unwrap();
    run(Command::new("fido2-cred")
        .args(["-M", "-r", "-h", "-i"])
        .arg(file("cred_param"))
        .arg("-o")
        .arg(file("cred"))
        .args([device, "es256"]));
    let verify_credential = |flags: &[&str]| {
        Command::new("fido2-cred")
            .arg("-V")
            .args(flags)
            .arg("-i")
            .arg(file("cred"))
            .arg("-o")
            .arg(file("verified"))
            .output()
            .unwrap()
    };
    assert!(
        !verify_credential(&[]).status.success(),
        "fido2-cred -V without -h: the hmac-secret output is in the signed authenticator data"
    );
    succeeded(&verify_credential(&["-h"]), "fido2-cred -V -h");
    let verified = std::fs::read_to_string(file("verified")).unwrap();
    let (_, public_key) = verified.split_once('\n').unwrap();
    std::fs::write(file("key.pem"), public_key).unwrap();

    let secret = |salt: &[u8]| -> Vec<u8> {
        std::fs::write(
            file("assert_param"),
            format!("{client_data_hash}\n{rp}\n{}\n", STANDARD.encode(salt)),
        )
        .unwrap();
        run(Command::new("fido2-assert")
            .args(["-G", "-r", "-h", "-p", "-i"])
            .arg(file("assert_param"))
            .arg("-o")
            .arg(file("assertion"))
            .arg(device));
        let verify = |flags: &[&str]| {
            Command::new("fido2-assert")
                .arg("-V")
                .args(flags)
                .arg("-i")
                .arg(file("assertion"))
                .arg(file("key.pem"))
                .arg("es256")
                .output()
                .unwrap()
        };
        succeeded(&verify(&["-h", "-p"]), "fido2-assert -V -h");
        assert!(
            !verify(&["-p"]).status.success(),
            "fido2-assert -V without -h: the hmac-secret output is in the signed authenticator data"
        );
        // One assertion: client data hash, RP ID, authenticator data, signature, user id, secret.
        let assertion = std::fs::read_to_string(file("assertion")).unwrap();
        let lines: Vec<&str> = assertion.lines().collect();
        assert_eq!(lines.len(), 6, "{assertion}");
        assert_eq!(lines[4], user_id);
        STANDARD.decode(lines[5]).unwrap()
    };
    let (salt, other_salt) = ([0x11u8; 32], [0x22u8; 32]);
    let first = secret(&salt);
    assert_eq!(first.len(), 32);
    assert_eq!(secret(&salt), first, "the same salt, the same secret");
    let other = secret(&other_salt);
    assert_eq!(other.len(), 32);
    assert_ne!(other, first, "another salt, another secret");
    assert_eq!(
        secret(&[salt, other_salt].concat()),
        [first, other].concat()
    );
}

/// Sixteen tokens from one process: each enumerates and answers, and a key handle of one is
/// refused by the next with 0x6A80.
#[test]
fn sixteen_tokens_served_by_one_process() {
    if !uhid_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tokens = names("many-", 16);
    create_tokens(&store, &tokens);
    let served = Served::start(&store, &tokens);
    let mut unique = served.hidraw.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 16, "{:?}", served.hidraw);

    let mut devices: Vec<HidrawTransport> = served
        .hidraw
        .iter()
        .map(|path| HidrawTransport::open_path(path).unwrap())
        .collect();
    let registrations: Vec<RegistrationResponse> =
        devices.iter_mut().map(|d| register(d)).collect();
    for (i, device) in devices.iter_mut().enumerate() {
        assert!(authenticate(device, &registrations[i]) >= 1);
        let other = &registrations[(i + 1) % 16];
        let request = messages::authenticate_request(
            Control::EnforcePresenceAndSign,
            &[0; 32],
            &messages::app_param(APP_ID),
            &other.key_handle,
        );
        assert_eq!(
            messages::status_of(&device.exchange(&request).unwrap()),
            Some(0x6A80),
            "token {i} refuses token {}'s handle",
            (i + 1) % 16
        );
    }
}

/// `vu2f probe --hidraw` passes, U2F and CTAP2, and measures AUTHENTICATE through the kernel
/// against in-process (printed for the README).
#[test]
fn probe_passes_against_the_virtual_device() {
    if !uhid_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tokens = names("probe-", 1);
    create_tokens(&store, &tokens);
    let served = Served::start(&store, &tokens);
    let output = run(Command::new(env!("CARGO_BIN_EXE_vu2f"))
        .args(["--json", "probe", "--rounds", "200", "--hidraw"])
        .arg(&served.hidraw[0]));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // A token as `token create` makes it: fido2, so the 6 U2F checks and the 4 of CTAP2.
    assert_eq!(report["ctap2"], true);
    assert_eq!(report["steps"].as_array().unwrap().len(), 10);
    let latency = &report["latency"];
    println!(
        "uhid latency: AUTHENTICATE median {:.1} µs through hidraw, {:.1} µs in-process, ratio {:.2} ({} rounds)",
        latency["token_median_us"].as_f64().unwrap(),
        latency["in_process_median_us"].as_f64().unwrap(),
        latency["ratio"].as_f64().unwrap(),
        latency["rounds"]
    );
}

/// SIGTERM and SIGKILL both remove every hidraw node; a restart brings them back with the same
/// keys and a higher counter.
#[test]
fn killing_the_server_removes_the_devices_and_a_restart_keeps_keys_and_counter() {
    if !uhid_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tokens = names("life-", 3);
    create_tokens(&store, &tokens);

    let mut served = Served::start(&store, &tokens);
    let mut device = HidrawTransport::open_path(&served.hidraw[0]).unwrap();
    let registration = register(&mut device);
    let before = authenticate(&mut device, &registration);
    drop(device);
    let status = served.process.signal("TERM");
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    assert!(gone(&served.hidraw), "SIGTERM removed every node");

    let mut served = Served::start(&store, &tokens);
    let mut device = HidrawTransport::open_path(&served.hidraw[0]).unwrap();
    let after = authenticate(&mut device, &registration);
    assert!(after > before, "counter {after} after {before}");
    drop(device);
    served.process.signal("KILL");
    assert!(gone(&served.hidraw), "SIGKILL removed every node");

    let served = Served::start(&store, &tokens);
    let mut device = HidrawTransport::open_path(&served.hidraw[0]).unwrap();
    assert!(authenticate(&mut device, &registration) > after);
}

/// The HID device behind a hidraw node, in sysfs: a new one for every device the kernel makes,
/// where the node's number may come round again.
fn hid_device(node: &Path) -> Option<PathBuf> {
    let name = node.file_name()?;
    std::fs::canonicalize(Path::new("/sys/class/hidraw").join(name).join("device")).ok()
}

/// The uniq of the HID device behind a hidraw node (what `find_hidraw` looks for).
fn hid_uniq(node: &Path) -> String {
    let device = hid_device(node).expect("the node's HID device");
    let uevent = std::fs::read_to_string(device.join("uevent")).unwrap();
    let uniq = uevent.lines().find_map(|l| l.strip_prefix("HID_UNIQ="));
    uniq.expect("HID_UNIQ in the uevent").to_owned()
}

/// `vu2f replug NAME` destroys the device and makes it anew with the same uniq: the old HID
/// device and its node go, a new one comes (perhaps under the same hidrawN: the kernel reuses
/// free numbers). The host's handle of before is dead; through the new node the token answers
/// with the same keys and a higher counter.
#[test]
fn replug_makes_a_new_hidraw_node_for_the_same_token() {
    if !uhid_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tokens = names("replug-", 1);
    create_tokens(&store, &tokens);
    let served = Served::start(&store, &tokens);
    let uniq = hid_uniq(&served.hidraw[0]);
    let old_device = hid_device(&served.hidraw[0]).unwrap();
    let mut old = HidrawTransport::open_path(&served.hidraw[0]).unwrap();
    let registration = register(&mut old);
    let before = authenticate(&mut old, &registration);

    run(common::vu2f(&store).args(["replug", &tokens[0]]));
    assert!(
        gone(std::slice::from_ref(&old_device)),
        "the HID device of before is gone"
    );
    // Its answer waits for the new node (and for udev to make it usable): no polling here.
    let node = vu2f::device::uhid::find_hidraw(&uniq).expect("a hidraw node when replug returns");
    assert_ne!(
        hid_device(&node).as_deref(),
        Some(old_device.as_path()),
        "a new HID device"
    );
    old.set_timeout(Duration::from_secs(1));
    assert!(
        old.exchange(&messages::version_request()).is_err(),
        "the handle of before is dead"
    );
    let mut new = HidrawTransport::open_path(&node).unwrap();
    let after = authenticate(&mut new, &registration);
    assert!(after > before, "counter {after} after {before}");
}

/// A token of a new store (named `prefix` and a number) served by `serve --uhid`, reached
/// through its hidraw node, and the AA emulator: `body` with them, in a runtime.
fn against_aa_through_hidraw<F: std::future::Future<Output = ()>>(
    prefix: &str,
    body: impl FnOnce(common::aa::Aa, vu2f::client::TokenClient) -> F,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tokens = names(prefix, 1);
    create_tokens(&store, &tokens);
    let served = Served::start(&store, &tokens);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let aa = common::aa::Aa::start(vu2f::aa_sim::SimConfig::default()).await;
        let transport = HidrawTransport::open_path(&served.hidraw[0]).unwrap();
        body(aa, common::aa::token_over(Box::new(transport))).await;
    });
}

/// The companion drives the AA emulator with the token through the kernel.
#[test]
fn enroll_and_log_on_through_hidraw() {
    if !uhid_available() {
        return;
    }
    against_aa_through_hidraw("aa-", |aa, mut token| async move {
        aa.enroll(&mut token, "alice").await.unwrap();
        let logged_on = aa.logon(&mut token, "alice").await.unwrap();
        assert_eq!(logged_on.completed_methods, ["U2F:1"]);
    });
}

/// `fido2-token ARGS`, its PINs (one per line) fed on standard input: `setsid` leaves it without
/// a controlling terminal, so that its readpassphrase(3) cannot open /dev/tty and reads them
/// from standard input instead, a line per prompt.
fn fido2_token(args: &[&str], pins: &str) -> Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new("setsid")
        .arg("-w")
        .arg("fido2-token")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pins.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn succeeded(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// libfido2 manages a `fido2` token (CTAP 2.1 §6.5, §6.8, §6.6): `fido2-token -S` sets a PIN and
/// `-C` changes it (the old one then refused), `-I -c` counts the resident credential that
/// `fido2-cred -M -r` made, `-L -r` lists its RP and `-L -k` the credential, `-D -i` deletes it
/// (the count is 0 after), and `-R` resets the token just after a replug but is refused 10 s
/// after one; after the reset the token has no PIN (`-I` shows `clientPin` false).
#[test]
fn libfido2_manages_pin_credentials_and_reset() {
    if !uhid_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tokens = names("manage-", 1);
    create_tokens_with(&store, &tokens, common::fido2_options());
    let served = Served::start(&store, &tokens);
    let device = served.hidraw[0].to_str().unwrap().to_owned();
    let uniq = hid_uniq(&served.hidraw[0]);

    let rp = "manage.vu2f.test";
    let file = |name: &str| dir.path().join(name);
    std::fs::write(
        file("cred_param"),
        format!(
            "{}\n{rp}\nalice\n{}\n",
            STANDARD.encode([0x33u8; 32]),
            STANDARD.encode([7u8; 16])
        ),
    )
    .unwrap();
    run(Command::new("fido2-cred")
        .args(["-M", "-r", "-i"])
        .arg(file("cred_param"))
        .arg("-o")
        .arg(file("cred"))
        .args([&device, "es256"]));
    let made = std::fs::read_to_string(file("cred")).unwrap();
    let credential_id = made.lines().nth(4).unwrap().to_owned();

    succeeded(&fido2_token(&["-S", &device], "1234\n1234\n"), "-S");
    succeeded(&fido2_token(&["-C", &device], "1234\n24680\n24680\n"), "-C");
    let refused = fido2_token(&["-I", "-c", &device], "1234\n");
    assert!(!refused.status.success(), "the old PIN still works");
    let counted = succeeded(&fido2_token(&["-I", "-c", &device], "24680\n"), "-I -c");
    assert!(counted.contains("existing rk(s): 1"), "{counted}");
    let rps = succeeded(&fido2_token(&["-L", "-r", &device], "24680\n"), "-L -r");
    assert!(
        rps.lines()
            .any(|l| l.starts_with("00: ") && l.ends_with(rp)),
        "{rps}"
    );
    let rks = succeeded(&fido2_token(&["-L", "-k", rp, &device], "24680\n"), "-L -k");
    assert!(rks.contains(&credential_id), "{credential_id} not in {rks}");
    succeeded(
        &fido2_token(&["-D", "-i", &credential_id, &device], "24680\n"),
        "-D -i",
    );
    let counted = succeeded(&fido2_token(&["-I", "-c", &device], "24680\n"), "-I -c");
    assert!(counted.contains("existing rk(s): 0"), "{counted}");

    run(common::vu2f(&store).args(["replug", &tokens[0]]));
    std::thread::sleep(Duration::from_secs(11));
    let node = vu2f::device::uhid::find_hidraw(&uniq).expect("a hidraw node after the replug");
    let node = node.to_str().unwrap().to_owned();
    let late = fido2_token(&["-R", &node], "");
    assert!(!late.status.success(), "a reset 11 s after the replug");
    assert!(
        String::from_utf8_lossy(&late.stderr).contains("FIDO_ERR_NOT_ALLOWED"),
        "{}",
        String::from_utf8_lossy(&late.stderr)
    );
    run(common::vu2f(&store).args(["replug", &tokens[0]]));
    let node = vu2f::device::uhid::find_hidraw(&uniq).expect("a hidraw node after the replug");
    let node = node.to_str().unwrap().to_owned();
    succeeded(&fido2_token(&["-R", &node], ""), "-R");
    let info = succeeded(&fido2_token(&["-I", &node], ""), "-I");
    assert!(
        info.lines()
            .any(|l| l.starts_with("options:") && l.contains("noclientPin")),
        "{info}"
    );
}

/// FIDO2:1 through the kernel: the companion enrolls a `fido2` token served by `serve --uhid`
/// (makeCredential over CTAPHID_CBOR on its hidraw node) and logs on at the `FIDO2` event
/// (getAssertion), twice, the counter rising.
#[test]
fn fido2_enroll_and_log_on_through_hidraw() {
    if !uhid_available() {
        return;
    }
    against_aa_through_hidraw("aa-fido2-", |aa, mut token| async move {
        aa.enroll_method(&mut token, "alice", "", vu2f::aa::FIDO2)
            .await
            .unwrap();
        let first = aa
            .logon_with(&mut token, &aa.policy, "alice", "FIDO2", None)
            .await
            .unwrap();
        let second = aa
            .logon_with(&mut token, &aa.policy, "alice", "FIDO2", None)
            .await
            .unwrap();
        assert_eq!(first.completed_methods, [vu2f::aa::FIDO2]);
        assert!(second.counter > first.counter, "{second:?} {first:?}");
    });
}

/// The automation API (`serve --uhid --control`, no token at the start): an authenticator added
/// at run time is a hidraw device that libfido2 lists and reads getInfo from (rk and uv as
/// added: `nork` for one without resident keys); libfido2 makes a credential with built-in UV
/// while the API says the user is verified, and not once it says otherwise; a removed one's
/// node is gone and libfido2 no longer lists it.
#[test]
fn authenticators_added_over_the_api_are_hidraw_devices_libfido2_uses() {
    if !uhid_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let mut command = common::vu2f(&dir.path().join("store"));
    command.env("XDG_RUNTIME_DIR", runtime.path()).args([
        "--json",
        "serve",
        "--uhid",
        "--control",
        "127.0.0.1:0",
    ]);
    let (_process, lines) = common::Running::start(command, 1);
    let url = lines[0]["automation"].as_str().unwrap().to_owned();
    let bearer = std::fs::read_to_string(lines[0]["token_file"].as_str().unwrap()).unwrap();
    let http = reqwest::blocking::Client::new();
    let call = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        let response = http
            .request(method.clone(), format!("{url}{path}"))
            .bearer_auth(&bearer)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{method} {path}");
        response.json::<serde_json::Value>().unwrap()["value"].clone()
    };
    let add = |body: serde_json::Value| {
        let id = call(reqwest::Method::POST, "/webauthn/authenticator", body);
        let path = format!("/webauthn/authenticator/{}", id.as_str().unwrap());
        let shown = call(reqwest::Method::GET, &path, serde_json::json!({}));
        let node = PathBuf::from(shown["hidraw"].as_str().expect("a hidraw node"));
        (path, node)
    };
    let (verifying, node) = add(serde_json::json!({
        "protocol": "ctap2", "transport": "usb", "hasResidentKey": true,
        "hasUserVerification": true, "isUserVerified": true,
    }));
    let (_plain, plain_node) = add(serde_json::json!({"protocol": "ctap2", "transport": "usb"}));
    let device = node.to_str().unwrap();

    let listed = |node: &Path| {
        let list = run(Command::new("fido2-token").arg("-L"));
        String::from_utf8_lossy(&list.stdout).contains(&format!("{}:", node.display()))
    };
    assert!(
        listed(&node) && listed(&plain_node),
        "fido2-token -L lists both"
    );
    let options = |node: &Path| {
        let info = run(Command::new("fido2-token").arg("-I").arg(node));
        let info = String::from_utf8_lossy(&info.stdout).into_owned();
        let line = info.lines().find(|l| l.starts_with("options:"));
        line.expect("an options line").to_owned()
    };
    let verifying_options = options(&node);
    assert!(
        verifying_options.contains(" rk,") && verifying_options.contains(" uv,"),
        "{verifying_options}"
    );
    let plain_options = options(&plain_node);
    assert!(
        plain_options.contains(" nork,")
            && !plain_options.contains(" uv,")
            && !plain_options.contains("largeBlobs"),
        "{plain_options}"
    );

    let param = dir.path().join("cred_param");
    let client_data_hash = STANDARD.encode([0x44u8; 32]);
    let user_id = STANDARD.encode([5u8; 16]);
    std::fs::write(
        &param,
        format!("{client_data_hash}\napi.vu2f.test\nalice\n{user_id}\n"),
    )
    .unwrap();
    let make = || {
        Command::new("fido2-cred")
            .args(["-M", "-v", "-i"])
            .arg(&param)
            .args([device, "es256"])
            .output()
            .unwrap()
    };
    let made = make();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    call(
        reqwest::Method::POST,
        &format!("{verifying}/uv"),
        serde_json::json!({"isUserVerified": false}),
    );
    assert!(!make().status.success(), "UV refused once the API says so");

    call(reqwest::Method::DELETE, &verifying, serde_json::json!({}));
    assert!(gone(std::slice::from_ref(&node)), "the node goes");
    assert!(!listed(&node), "fido2-token -L no longer lists it");
    assert!(listed(&plain_node), "the other one stays");
}
