//! The HTML report of `vu2f load` opens in headless Chromium (Debian `chromium`) and its charts
//! render: a screenshot of the page has the charts' blue and red lines in it. Needs Chromium;
//! `scripts/test.sh` installs it and sets `VU2F_REQUIRE_CHROMIUM`, so there it cannot be skipped.
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vu2f::load::{self, LoadOptions, Model, Target, Until};

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| Path::new(path).exists())
}

/// Pixels of exactly this colour in an RGB(A) PNG.
fn count_colour(png_path: &Path, colour: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let step = info.color_type.samples();
    assert!(step >= 3, "{:?}", info.color_type);
    buffer[..info.buffer_size()]
        .chunks(step)
        .filter(|pixel| pixel[..3] == colour)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_html_report_renders_its_charts_in_chromium() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("VU2F_REQUIRE_CHROMIUM").is_none(),
            "VU2F_REQUIRE_CHROMIUM is set, but Chromium is not installed"
        );
        eprintln!("SKIPPED: no Chromium here; scripts/test.sh installs it");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = keystore::Store::open(&dir.path().join("store")).unwrap();
    let report = load::run(
        &store,
        LoadOptions {
            target: Target::Embedded {
                server_delay: Duration::ZERO,
            },
            tokens: 20,
            prefix: "r-".into(),
            enroll: true,
            event: "Search Card".into(),
            chain: None,
            fido2: load::Fido2Users::default(),
            model: Model::Rate(200.0),
            until: Until::Duration(Duration::from_secs(3)),
            ramp_up: Duration::ZERO,
            progress: false,
            timeout: Duration::from_secs(10),
        },
    )
    .await
    .unwrap();
    let html = dir.path().join("report.html");
    std::fs::write(&html, report.to_html()).unwrap();
    let screenshot = dir.path().join("report.png");
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1100,1500",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        screenshot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let blue = count_colour(&screenshot, [0, 0, 255]);
    let red = count_colour(&screenshot, [255, 0, 0]);
    let green = count_colour(&screenshot, [0, 255, 0]);
    println!("screenshot: {blue} blue, {red} red, {green} green pixels");
    assert!(
        blue > 1_000,
        "the p50, completed and histogram series: {blue} blue pixels"
    );
    assert!(red > 100, "the p99 line: {red} red pixels");
    assert!(green > 100, "the started line: {green} green pixels");
}
