//! `vu2f bench` as a process, briefly: every figure is measured, FIDO2:1 logons beside U2F:1
//! ones against the same ECDSA bound, and both are printed.
mod common;

#[test]
fn bench_measures_fido2_logons_beside_u2f_ones() {
    let run = |json: bool| {
        let mut command = common::vu2f_storeless();
        if json {
            command.arg("--json");
        }
        common::succeeded(command.args(["bench", "--seconds", "100ms"]))
    };
    let report: serde_json::Value = serde_json::from_slice(&run(true)).unwrap();
    let figure = |name: &str| report[name].as_f64().unwrap();
    assert!(figure("fido2_logons_per_sec") > 0.0, "{report}");
    assert!(figure("logons_per_sec") > 0.0, "{report}");
    let bound = figure("ecdsa_logon_bound_per_sec");
    let ratio = figure("fido2_logon_ratio");
    assert!(
        (ratio - figure("fido2_logons_per_sec") / bound).abs() < 1e-9 && ratio < 1.0,
        "{report}"
    );
    let text = String::from_utf8(run(false)).unwrap();
    for line in ["U2F:1 logons via HTTP", "FIDO2:1 logons via HTTP"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(line) && l.contains("% of the ECDSA bound")),
            "{text}"
        );
    }
}
