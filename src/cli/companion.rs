//! `vu2f logon`, `vu2f enroll` and `vu2f template`: the companion against an AA server or
//! `vu2f aa-sim`.
//! Secrets come from the environment or files as well as flags, and are never printed.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::Global;
use crate::aa::api::{AuthData, EndpointCredentials};
use crate::client::enroll::{EnrollRequest, DEFAULT_ENROLL_EVENT};
use crate::client::logon::{Logon, LogonRequest};
use crate::client::{
    endpoint, AaHttp, Endpoint, EndpointAccess, OriginPolicy, Step, TlsTrust, TokenClient,
};
use crate::transport::{HidrawTransport, InProcess, TokenTransport, UdpTransport};
use crate::u2f::{Authenticator, Presence, PresencePolicy};

/// How to reach the server and prove the endpoint.
#[derive(Debug, Args)]
pub(super) struct ServerArgs {
    /// The AA server's base URL (`https://aa.example.com`).
    #[arg(long, value_name = "URL", env = "VU2F_SERVER")]
    pub(super) server: Option<String>,
    /// Endpoint id of an endpoint registered before.
    #[arg(
        long,
        value_name = "ID",
        requires = "endpoint_secret",
        env = "VU2F_ENDPOINT_ID"
    )]
    endpoint_id: Option<String>,
    /// Its secret.
    #[arg(
        long,
        value_name = "SECRET",
        requires = "endpoint_id",
        env = "VU2F_ENDPOINT_SECRET",
        hide_env_values = true
    )]
    endpoint_secret: Option<String>,
    /// A file with the endpoint (`{"id":…,"secret":…}`). With --admin-user and no such file yet,
    /// the endpoint is registered and saved there (mode 0600) for later runs.
    #[arg(long, value_name = "FILE", conflicts_with = "endpoint_id")]
    endpoint_file: Option<PathBuf>,
    /// Register an endpoint with this administrator (deleted after the run unless --endpoint-file).
    #[arg(
        long,
        value_name = "USER",
        requires = "admin_password",
        conflicts_with = "endpoint_id",
        env = "VU2F_ADMIN_USER"
    )]
    admin_user: Option<String>,
    /// The administrator's password.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "VU2F_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    admin_password: Option<String>,
    /// Trust the certificates of this PEM file besides the system's.
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Accept any server certificate.
    #[arg(long)]
    insecure: bool,
    /// An appId to sign for besides the server's own origin (repeatable).
    #[arg(long = "appid", value_name = "APPID")]
    app_ids: Vec<String>,
    /// The origin put in the client data [default: the server's origin].
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,
    /// How long to wait for each answer of the server (30s, 2m, or seconds).
    #[arg(long, value_name = "DURATION", value_parser = super::duration::parse, default_value = "30s")]
    timeout: Duration,
}

/// Which token answers.
#[derive(Debug, Args)]
pub(super) struct TokenArgs {
    /// A token of the store, run in this process.
    #[arg(long, value_name = "NAME", required_unless_present_any = ["udp", "hidraw"])]
    token: Option<String>,
    /// A token served by `vu2f serve --udp` at this address.
    #[arg(long, value_name = "ADDR", conflicts_with = "token")]
    udp: Option<SocketAddr>,
    /// A U2F HID device: `vu2f serve --uhid`'s, or a physical key.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["token", "udp"])]
    hidraw: Option<PathBuf>,
    /// User presence for --token: auto, deny, delay:MS, prompt.
    #[arg(long, default_value = "auto", value_name = "POLICY")]
    presence: PresencePolicy,
    /// Built-in user verification for --token (a fido2 token), as `serve --uv`: auto, deny,
    /// delay:MS, prompt [default: none].
    #[arg(long, value_name = "POLICY")]
    uv: Option<PresencePolicy>,
    /// How long to wait for a touch (30s, 1m, or seconds).
    #[arg(long, value_name = "DURATION", value_parser = super::duration::parse, default_value = "30s")]
    touch_timeout: Duration,
}

/// A user's password: from a file or the environment, never a flag.
#[derive(Debug, Args)]
pub(super) struct PasswordArgs {
    /// A file whose first line is the user's password (else $VU2F_PASSWORD).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

impl PasswordArgs {
    /// The password, if one was given.
    pub(super) fn password(&self) -> anyhow::Result<Option<String>> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--password-file {}: {e}", path.display()))?;
            return Ok(Some(text.lines().next().unwrap_or_default().to_owned()));
        }
        Ok(std::env::var("VU2F_PASSWORD").ok())
    }
}

#[derive(Debug, Args)]
pub(super) struct LogonArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    token: TokenArgs,
    #[command(flatten)]
    password: PasswordArgs,
    /// The user (`REPO\user` or a bare name).
    #[arg(long)]
    user: String,
    /// The event to log on to.
    #[arg(long)]
    event: String,
    /// The chain to use, by name [default: the first of the user's chains for the event that
    /// vu2f can complete: U2F:1 with the token, PASSWORD:1 when a password is given].
    #[arg(long, value_name = "NAME")]
    chain: Option<String>,
}

/// Who opens a login session, on which server, with what: the logon that enrollment and the
/// template calls start with.
#[derive(Debug, Args)]
pub(super) struct SessionArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    token: TokenArgs,
    #[command(flatten)]
    password: PasswordArgs,
    /// The user (`REPO\user` or a bare name).
    #[arg(long)]
    user: String,
    /// The event of the logon that opens the session (one that permits enrollment).
    #[arg(long, default_value = DEFAULT_ENROLL_EVENT)]
    event: String,
    /// The chain of that logon, by name [default: the first one vu2f can complete].
    #[arg(long, value_name = "NAME")]
    chain: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct EnrollArgs {
    #[command(flatten)]
    session: SessionArgs,
    /// The template's category id [default: the default category]; a user has one U2F template
    /// per category.
    #[arg(long, value_name = "ID", default_value = "")]
    category: String,
    /// The template's comment.
    #[arg(long, default_value = "vu2f virtual token")]
    comment: String,
    /// The method to enroll: U2F:1, or FIDO2:1 (WebAuthn, for a fido2 token).
    #[arg(long, value_name = "METHOD", default_value = crate::aa::U2F)]
    method: String,
}

/// `vu2f template`: a user's templates.
#[derive(Debug, Subcommand)]
pub(super) enum TemplateCommand {
    /// List the user's templates (after a logon to the event).
    List(Box<SessionArgs>),
    /// Test an enrolled U2F template with the token, as AA's portal does.
    Test(Box<TemplateTestArgs>),
}

#[derive(Debug, Args)]
pub(super) struct TemplateTestArgs {
    #[command(flatten)]
    session: SessionArgs,
    /// The template to test [default: the user's U2F template that belongs to the token].
    #[arg(long, value_name = "ID")]
    template: Option<String>,
}

impl ServerArgs {
    /// How to trust the server's certificate.
    pub(super) fn trust(&self) -> TlsTrust {
        match (&self.ca, self.insecure) {
            (Some(path), _) => TlsTrust::Ca(path.clone()),
            (None, true) => TlsTrust::Insecure,
            (None, false) => TlsTrust::System,
        }
    }

    /// The server's URL, which is required.
    pub(super) fn url(&self) -> anyhow::Result<&str> {
        self.server
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("no server: pass --server URL (or set VU2F_SERVER)"))
    }

    /// appIds the user allows besides the server's origin.
    pub(super) fn app_ids(&self) -> &[String] {
        &self.app_ids
    }

    /// Seconds to wait for each answer.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    fn connect(&self) -> anyhow::Result<(AaHttp, EndpointAccess, OriginPolicy)> {
        let http = AaHttp::new(self.url()?, &self.trust(), self.timeout())?;
        let access = self.access()?;
        let policy = OriginPolicy::new(http.origin(), self.app_ids.clone(), self.origin.clone());
        Ok((http, access, policy))
    }

    /// How to get the endpoint.
    pub(super) fn access(&self) -> anyhow::Result<EndpointAccess> {
        Ok(match (&self.endpoint_id, &self.endpoint_secret, &self.admin_user) {
            (Some(id), Some(secret), _) => EndpointAccess::Given(EndpointCredentials {
                id: id.clone(),
                secret: secret.clone(),
            }),
            (_, _, Some(user)) => EndpointAccess::Admin {
                auth: AuthData {
                    method_id: crate::client::logon::PASSWORD.into(),
                    user_name: user.clone(),
                    password: self.admin_password.clone().unwrap_or_default(),
                },
                keep: self.endpoint_file.clone(),
            },
            _ => match &self.endpoint_file {
                Some(path) => EndpointAccess::Given(endpoint::read_credentials(path)?),
                None => anyhow::bail!(
                    "no endpoint: pass --endpoint-id and --endpoint-secret, --endpoint-file, or --admin-user and --admin-password"
                ),
            },
        })
    }
}

impl TokenArgs {
    fn open(&self, global: &Global) -> anyhow::Result<TokenClient> {
        if let Some(path) = &self.hidraw {
            return Ok(TokenClient::new(
                Box::new(HidrawTransport::open_path(path)?),
                self.touch_timeout,
            ));
        }
        let transport: Box<dyn TokenTransport + Send> = match (&self.token, self.udp) {
            (_, Some(addr)) => Box::new(UdpTransport::connect(addr)?),
            (Some(name), None) => {
                let store = global.open_store()?;
                let keys = store.load(name)?;
                let u2f = Authenticator::new(keys, Presence::new(self.presence));
                // CTAP2 for a fido2 token (U2F APDUs still reach the U2F engine inside).
                Box::new(InProcess::ctap2(crate::ctap2::Authenticator::new(
                    u2f, self.uv,
                )))
            }
            (None, None) => {
                anyhow::bail!("no token: pass --token NAME, --udp ADDR or --hidraw PATH")
            }
        };
        Ok(TokenClient::new(transport, self.touch_timeout))
    }
}

/// What `logon` prints with `--json`.
#[derive(Serialize)]
struct LogonReport {
    login_session_id: String,
    user_id: Option<String>,
    chain: String,
    completed_methods: Vec<String>,
    counter: Option<u32>,
    steps: Vec<Step>,
}

/// What `enroll` prints with `--json`.
#[derive(Serialize)]
struct EnrollReport {
    template_id: String,
    user_id: String,
    steps: Vec<Step>,
}

/// Collects steps, and prints them as they come unless `--json`.
fn step_printer<'a>(global: &Global, steps: &'a mut Vec<Step>) -> impl FnMut(&Step) + Send + 'a {
    let live = !global.json;
    move |step: &Step| {
        if live {
            println!("  {}", step.to_line());
        }
        steps.push(step.clone());
    }
}

pub(super) fn logon(global: &Global, args: LogonArgs) -> anyhow::Result<()> {
    let (http, access, policy) = args.server.connect()?;
    let mut token = args.token.open(global)?;
    let request = LogonRequest {
        user: args.user,
        event: args.event,
        password: args.password.password()?,
        chain: args.chain,
    };
    let mut steps = Vec::new();
    let logged_on = super::runtime()?.block_on(async {
        let mut sink = step_printer(global, &mut steps);
        let endpoint = Endpoint::open(&http, &access, &mut sink).await?;
        let result = Logon::new(&http, &endpoint, Some(&mut token), &policy, &mut sink)
            .run(&request)
            .await;
        endpoint.close(&http).await?;
        anyhow::Ok(result?)
    })?;
    let report = LogonReport {
        login_session_id: logged_on.login_session_id,
        user_id: logged_on.user_id,
        chain: logged_on.chain,
        completed_methods: logged_on.completed_methods,
        counter: logged_on.counter,
        steps,
    };
    super::print(global, &report, |r| {
        format!("login_session_id: {}\n", r.login_session_id)
    })
}

pub(super) fn enroll(global: &Global, args: EnrollArgs) -> anyhow::Result<()> {
    let session = args.session;
    let (http, access, policy) = session.server.connect()?;
    let mut token = session.token.open(global)?;
    let password = session.password.password()?.ok_or_else(|| {
        anyhow::anyhow!(
            "enrollment starts with a password logon: pass --password-file or set VU2F_PASSWORD"
        )
    })?;
    let request = EnrollRequest {
        user: session.user,
        password,
        event: session.event,
        chain: session.chain,
        category: args.category,
        comment: args.comment,
    };
    let mut steps = Vec::new();
    let enrolled = super::runtime()?.block_on(async {
        let mut sink = step_printer(global, &mut steps);
        let endpoint = Endpoint::open(&http, &access, &mut sink).await?;
        let result = crate::client::enroll::enroll_method(
            &http,
            &endpoint,
            &mut token,
            &policy,
            &request,
            &args.method,
            &mut sink,
        )
        .await;
        endpoint.close(&http).await?;
        anyhow::Ok(result?)
    })?;
    let report = EnrollReport {
        template_id: enrolled.template_id,
        user_id: enrolled.user_id,
        steps,
    };
    super::print(global, &report, |r| {
        format!("template: {}\n", r.template_id)
    })
}

/// What `template list` prints with `--json`.
#[derive(Serialize)]
struct TemplateListReport {
    user_id: String,
    templates: Vec<crate::aa::portal::TemplateSummary>,
    steps: Vec<Step>,
}

/// What `template test` prints with `--json`.
#[derive(Serialize)]
struct TemplateTestReport {
    template_id: String,
    user_id: String,
    counter: u32,
    steps: Vec<Step>,
}

impl SessionArgs {
    fn logon_request(&self) -> anyhow::Result<LogonRequest> {
        Ok(LogonRequest {
            user: self.user.clone(),
            event: self.event.clone(),
            password: self.password.password()?,
            chain: self.chain.clone(),
        })
    }
}

pub(super) fn template(global: &Global, command: TemplateCommand) -> anyhow::Result<()> {
    let args = match &command {
        TemplateCommand::List(args) => args.as_ref(),
        TemplateCommand::Test(args) => &args.session,
    };
    let (http, access, policy) = args.server.connect()?;
    let mut token = args.token.open(global)?;
    let logon = args.logon_request()?;
    let mut steps = Vec::new();
    let runtime = super::runtime()?;
    match &command {
        TemplateCommand::List(_) => {
            let (user_id, templates) = runtime.block_on(async {
                let mut sink = step_printer(global, &mut steps);
                let endpoint = Endpoint::open(&http, &access, &mut sink).await?;
                let result = crate::client::template::list(
                    &http,
                    &endpoint,
                    Some(&mut token),
                    &policy,
                    &logon,
                    &mut sink,
                )
                .await;
                endpoint.close(&http).await?;
                anyhow::Ok(result?)
            })?;
            let report = TemplateListReport {
                user_id,
                templates,
                steps,
            };
            super::print(global, &report, |r| {
                r.templates
                    .iter()
                    .map(|t| format!("{} {} {:?}\n", t.id, t.method_id, t.comment))
                    .collect()
            })
        }
        TemplateCommand::Test(test) => {
            let tested = runtime.block_on(async {
                let mut sink = step_printer(global, &mut steps);
                let endpoint = Endpoint::open(&http, &access, &mut sink).await?;
                let result = crate::client::template::test(
                    &http,
                    &endpoint,
                    &mut token,
                    &policy,
                    &logon,
                    test.template.as_deref(),
                    &mut sink,
                )
                .await;
                endpoint.close(&http).await?;
                anyhow::Ok(result?)
            })?;
            let report = TemplateTestReport {
                template_id: tested.template_id,
                user_id: tested.user_id,
                counter: tested.counter,
                steps,
            };
            super::print(global, &report, |r| {
                format!("template {} works (counter {})\n", r.template_id, r.counter)
            })
        }
    }
}
