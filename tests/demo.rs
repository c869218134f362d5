//! `vu2f demo`, the README's first command: every section completes, in order, the U2F:1 ones
//! first and then FIDO2:1's enrollment and logon with the same token; and the binary prints it.
mod common;

use vu2f::client::Step;
use vu2f::demo::DemoObserver;

#[derive(Default)]
struct Seen {
    titles: Vec<String>,
    results: Vec<String>,
}

impl DemoObserver for Seen {
    fn section(&mut self, title: &str) {
        self.titles.push(title.to_owned());
    }

    fn step(&mut self, _: &Step) {}

    fn result(&mut self, result: &str) {
        self.results.push(result.to_owned());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_logs_on_with_u2f_then_enrolls_and_logs_on_with_fido2() {
    let mut seen = Seen::default();
    let report = vu2f::demo::run(&mut seen).await.unwrap();
    assert_eq!(seen.titles.len(), seen.results.len(), "every section ended");
    let titles: Vec<&str> = seen.titles.iter().map(String::as_str).collect();
    assert!(titles[1].contains("then U2F:1"), "{titles:?}");
    assert!(titles[5].starts_with("Enroll the same token"), "{titles:?}");
    assert_eq!(titles[6], "Log on to \"FIDO2\" with FIDO2:1");
    assert_eq!(titles.len(), 7, "{titles:?}");

    let fido2_enroll = &report.sections[5];
    let lines: Vec<String> = fido2_enroll.steps.iter().map(Step::to_line).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("token makeCredential") && l.contains("ES256 credential")),
        "{lines:#?}"
    );
    let fido2_logon = &report.sections[6];
    let lines: Vec<String> = fido2_logon.steps.iter().map(Step::to_line).collect();
    assert!(
        lines[0].contains("chain \"FIDO2 only\" (FIDO2:1)"),
        "{lines:#?}"
    );
    // One token, one counter: the FIDO2 signature follows the U2F ones.
    let signed = lines
        .iter()
        .find(|l| l.contains("token getAssertion"))
        .unwrap();
    assert!(signed.contains("signed, counter 5"), "{signed}");
    assert!(
        lines.last().unwrap().contains("OK (AUCORE-2001)"),
        "{lines:#?}"
    );
    assert_eq!(
        seen.results[6],
        format!("login_session_id {}", report.login_session_id)
    );
}

#[test]
fn the_binary_prints_the_fido2_sections() {
    let stdout = common::succeeded(common::vu2f_storeless().arg("demo"));
    let text = String::from_utf8_lossy(&stdout);
    assert!(
        text.contains("\nLog on to \"FIDO2\" with FIDO2:1\n"),
        "{text}"
    );
    assert!(text.contains("  token getAssertion"), "{text}");
}
