//! `--web-config-file`: TLS on the listener that serves the metrics, basic
//! authentication of the metrics endpoint, mutual TLS, and certificates and
//! users swapped at SIGHUP, with certificates made for each test.

mod support;

use support::tls::{self, PASSWORD, Pki};
use support::{Promwasm, Scrape, wait_for};

/// promwasm with the metrics on a listener of their own, under `web`.
fn start(web: &std::path::Path, extra: &[&str]) -> Promwasm {
    let mut args = vec![
        "--metrics-listen",
        "127.0.0.1:0",
        "--web-config-file",
        web.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let app = Promwasm::start(&args);
    assert!(
        app.metrics_url.starts_with("https://"),
        "{}",
        app.metrics_url
    );
    app
}

/// `IP:PORT` of the main listener, which must be an HTTPS one.
fn https_main(app: &Promwasm) -> &str {
    (app.base.strip_prefix("https://")).expect("an https main listener")
}

/// A scrape with alice's password (and the client certificate `client`,
/// when given), parsed.
fn scrape(pki: &Pki, app: &Promwasm, client: Option<&str>) -> Scrape {
    let answer = tls::get(
        pki,
        &app.metrics_addr(),
        "/metrics",
        Some(("alice", PASSWORD)),
        client,
    );
    let answer = answer.unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.head);
    Scrape::parse(&answer.body)
}

/// Waits until the series `name{labels}` reads 1.
fn wait_for_one(
    pki: &Pki,
    app: &Promwasm,
    client: Option<&str>,
    name: &str,
    labels: &[(&str, &str)],
) {
    wait_for(&format!("{name}{labels:?} == 1"), || {
        (scrape(pki, app, client).get(name, labels) == Some(1.0)).then_some(())
    });
}

#[test]
fn tls_and_basic_auth_guard_the_metrics() {
    let pki = Pki::new("basic");
    let app = start(&pki.web_config("NoClientCert"), &[]);
    let addr = app.metrics_addr();
    // The routes stay on the plain main listener.
    assert_eq!(app.get("/").status, 200);

    let good = tls::get(&pki, &addr, "/metrics", Some(("alice", PASSWORD)), None).unwrap();
    assert_eq!(good.status(), 200, "{}", good.head);
    assert_eq!(good.header("x-frame-options"), Some("deny"));
    let scrape = Scrape::parse(&good.body);
    assert_eq!(
        scrape.get(
            "flask_http_request_total",
            &[("method", "GET"), ("status", "200")]
        ),
        Some(1.0)
    );

    for (basic, reason) in [
        (Some(("alice", "wrong")), "wrong_password"),
        (Some(("bob", PASSWORD)), "unknown_user"),
        (None, "missing"),
    ] {
        let refused = tls::get(&pki, &addr, "/metrics", basic, None).unwrap();
        assert_eq!(refused.status(), 401, "{reason}: {}", refused.head);
        assert_eq!(
            refused.header("www-authenticate"),
            Some("Basic realm=\"promwasm\", charset=\"UTF-8\"")
        );
        assert_eq!(refused.header("x-frame-options"), Some("deny"));
        assert_eq!(refused.body, "Unauthorized\n");
    }
    // Another path of the metrics listener: no credentials asked, the
    // headers given.
    let other = tls::get(&pki, &addr, "/nope", None, None).unwrap();
    assert_eq!(other.status(), 404, "{}", other.head);
    assert_eq!(other.header("x-frame-options"), Some("deny"));
    let scrape = self::scrape(&pki, &app, None);
    for reason in ["wrong_password", "unknown_user", "missing"] {
        assert_eq!(
            scrape.get("promwasm_http_unauthorized_total", &[("reason", reason)]),
            Some(1.0),
            "{reason}"
        );
    }

    // Plain HTTP to the TLS port gets no HTTP answer, and is counted.
    let (answer, _) = support::raw(
        &format!("http://{addr}"),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        true,
    );
    assert!(!answer.starts_with("HTTP/"), "{answer:?}");
    let handshake = [("reason", "tls_handshake")];
    wait_for_one(&pki, &app, None, "promwasm_http_rejected_total", &handshake);
}

#[test]
fn web_config_main_puts_the_tls_on_the_routes_too() {
    let pki = Pki::new("main");
    let web = pki.web_config("NoClientCert");
    let app = start(&web, &["--web-config-main"]);
    let main = https_main(&app);
    let index = tls::get(&pki, main, "/", None, None).unwrap();
    assert_eq!(index.status(), 200, "{}", index.head);
    assert!(index.body.starts_with("Hello!"), "{}", index.body);
    // No credentials needed for the routes; the metrics still ask for them.
    let metrics = tls::get(&pki, &app.metrics_addr(), "/metrics", None, None).unwrap();
    assert_eq!(metrics.status(), 401);
    let (code, err) = support::start_failure(&["--web-config-main"]);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn without_a_metrics_listener_the_main_one_takes_tls_and_auth() {
    let pki = Pki::new("single");
    let web = pki.web_config("NoClientCert");
    let app = Promwasm::start(&["--web-config-file", web.to_str().unwrap()]);
    let main = https_main(&app);
    // The routes need no credentials; the metrics on the same port do.
    let index = tls::get(&pki, main, "/", None, None).unwrap();
    assert_eq!(index.status(), 200, "{}", index.head);
    assert!(index.body.starts_with("Hello!"), "{}", index.body);
    let refused = tls::get(&pki, main, "/metrics", None, None).unwrap();
    assert_eq!(refused.status(), 401, "{}", refused.head);
    assert_eq!(refused.header("x-frame-options"), Some("deny"));
    let scrape = self::scrape(&pki, &app, None);
    assert_eq!(
        scrape.get(
            "flask_http_request_total",
            &[("method", "GET"), ("status", "200")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.get("promwasm_http_unauthorized_total", &[("reason", "missing")]),
        Some(1.0)
    );
}

#[test]
fn a_silent_client_is_dropped_at_the_handshake_timeout_and_counted() {
    let pki = Pki::new("silent");
    let web = pki.web_config("NoClientCert");
    let app = start(&web, &["--header-read-timeout", "300ms"]);
    use std::io::Read;
    let mut silent = support::connect(&format!("http://{}", app.metrics_addr()));
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    // Nothing is sent; the server closes once the timeout has passed.
    let mut buf = [0u8; 64];
    let read = silent.read(&mut buf);
    let waited = started.elapsed();
    assert!(matches!(read, Ok(0)), "{read:?}");
    assert!(
        (250..5000).contains(&waited.as_millis()),
        "closed after {waited:?}"
    );
    let timeout = [("reason", "tls_handshake_timeout")];
    wait_for_one(&pki, &app, None, "promwasm_http_rejected_total", &timeout);
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    let pki = Pki::new("mtls");
    let app = start(&pki.web_config("RequireAndVerifyClientCert"), &[]);
    let addr = app.metrics_addr();
    let with = tls::get(
        &pki,
        &addr,
        "/metrics",
        Some(("alice", PASSWORD)),
        Some("client"),
    );
    assert_eq!(with.unwrap().status(), 200);
    // TLS 1.3: the client has finished its side when the server refuses;
    // the server's alert reaches it at its first read, or its request meets
    // the closed connection. The count below says the server refused.
    let without = tls::get(&pki, &addr, "/metrics", Some(("alice", PASSWORD)), None);
    let err = without
        .err()
        .expect("no answer without a client certificate");
    use std::io::ErrorKind;
    assert!(
        err.to_string()
            .contains("received fatal alert: CertificateRequired")
            || matches!(
                err.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
        "{err}"
    );
    let handshake = [("reason", "tls_handshake")];
    wait_for_one(
        &pki,
        &app,
        Some("client"),
        "promwasm_http_rejected_total",
        &handshake,
    );
}

#[test]
fn sighup_swaps_certificate_and_users_and_keeps_them_on_a_bad_file() {
    let pki = Pki::new("rotate");
    let web = pki.web_config("NoClientCert");
    let app = start(&web, &[]);
    let addr = app.metrics_addr();
    let get = |password: &str| {
        tls::get(&pki, &addr, "/metrics", Some(("alice", password)), None).unwrap()
    };
    let first = get(PASSWORD);
    assert_eq!(first.server_cert, tls::der_of(&pki.path("server.pem")));

    // A new certificate, and alice's password changed.
    let rotated = pki.leaf("server", rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    assert_ne!(rotated, first.server_cert);
    let text = std::fs::read_to_string(&web).unwrap();
    let old_hash = text
        .split("alice: '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let new_hash = bcrypt::hash("n3w", 4).unwrap();
    std::fs::write(&web, text.replace(old_hash, &new_hash)).unwrap();
    app.signal("HUP");
    let served = wait_for("the rotated certificate", || {
        let answer = get("n3w");
        (answer.server_cert == rotated).then_some(answer)
    });
    assert_eq!(served.status(), 200, "{}", served.head);
    assert_eq!(
        Scrape::parse(&served.body).get(
            "promwasm_web_config_reloads_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(get(PASSWORD).status(), 401);

    // A key that is not one: the reload is refused whole, certificate and
    // users stay.
    std::fs::write(pki.path("server.key"), "not a key\n").unwrap();
    std::fs::write(&web, text).unwrap();
    app.signal("HUP");
    let refused = wait_for("the refused reload", || {
        let answer = get("n3w");
        let scrape = Scrape::parse(&answer.body);
        let failed = scrape.get(
            "promwasm_web_config_reloads_total",
            &[("result", "failure")],
        );
        (failed == Some(1.0)).then_some(answer)
    });
    assert_eq!(refused.server_cert, rotated);
    assert_eq!(get(PASSWORD).status(), 401);
}

#[test]
fn a_reload_cannot_turn_authentication_off() {
    let pki = Pki::new("auth-off");
    let web = pki.web_config("NoClientCert");
    let app = start(&web, &[]);
    let served = tls::der_of(&pki.path("server.pem"));
    let text = std::fs::read_to_string(&web).unwrap();
    let users = text.find("basic_auth_users:").unwrap();
    std::fs::write(&web, &text[..users]).unwrap();
    // Refused whole: the new certificate the file names is not taken either.
    pki.leaf("server", rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    app.signal("HUP");
    let failure = [("result", "failure")];
    wait_for_one(
        &pki,
        &app,
        None,
        "promwasm_web_config_reloads_total",
        &failure,
    );
    let open = tls::get(&pki, &app.metrics_addr(), "/metrics", None, None).unwrap();
    assert_eq!(open.status(), 401);
    assert_eq!(open.server_cert, served);
}

#[test]
fn a_bad_web_config_is_refused_at_start_naming_file_and_key() {
    let pki = Pki::new("bad");
    let web = pki.path("web.yml");
    for (text, message) in [
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  cipher_suites: [x]\n",
            "tls_server_config.cipher_suites is not supported by promwasm",
        ),
        (
            "basic_auth_users:\n  alice: hunter2\n",
            "basic_auth_users.alice: not a bcrypt hash",
        ),
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n",
            "cannot read certificates from",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: client.key\n",
            "does not go with the certificate",
        ),
    ] {
        std::fs::write(&web, text).unwrap();
        let (code, err) = support::start_failure(&[
            "--metrics-listen",
            "127.0.0.1:0",
            "--web-config-file",
            web.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(message), "{text}: {err}");
        assert!(err.contains(&web.display().to_string()), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
