//! Validates `deploy/` with the tools that consume it, and against the gateway
//! itself: Prometheus config, alert rules and their unit tests (promtool),
//! the Grafana dashboard and provisioning, compose.yaml, the Kubernetes
//! manifests, the systemd unit (systemd-analyze verify), the nginx-rtmp
//! config (nginx -t), the Dockerfile's runtime packages (every GStreamer
//! element of pipelines/*.toml mapped to its plugin with gst-inspect-1.0 and
//! to its Debian package with dpkg -S), and a live /metrics scrape of a
//! gateway that really recorded (promtool check metrics, bounded labels, and
//! every metric the dashboard and the alerts use must be exposed).
//!
//! A missing tool fails the test with a message to run scripts/install-deps.sh;
//! nothing is skipped.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

// ---------------------------------------------------------------------------
// helpers

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(rel: &str) -> PathBuf {
    repo().join("deploy").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The path of a tool, or a failure that says how to install it.
fn tool(name: &str, package: &str) -> PathBuf {
    if name.contains('/') {
        let p = PathBuf::from(name);
        assert!(p.exists(), "{name} is missing: run scripts/install-deps.sh (Debian package {package})");
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{name}` is not installed: run scripts/install-deps.sh (Debian package {package})");
}

fn run(program: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn promtool() -> PathBuf {
    tool("promtool", "prometheus")
}

/// Every YAML document of a file, as JSON (PyYAML's safe loader).
fn yaml_docs(path: &Path) -> Vec<Value> {
    let python = tool("/usr/bin/python3", "python3-yaml");
    const SCRIPT: &str = "import json, sys, yaml\n\
        with open(sys.argv[1]) as f:\n    docs = list(yaml.safe_load_all(f))\n\
        json.dump(docs, sys.stdout, default=str)\n";
    let out = run(&python, &["-c", SCRIPT, path.to_str().unwrap()], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("No module named 'yaml'"),
        "PyYAML is missing: run scripts/install-deps.sh (Debian package python3-yaml)"
    );
    assert!(out.status.success(), "{} is not valid YAML:\n{err}", path.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn yaml(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{} should hold one YAML document", path.display());
    docs.remove(0)
}

fn s<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what} should be a string, is {v}"))
}

/// Collects failed expectations so that one test reports all of them.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, msg: impl Into<String>) {
        if !ok {
            self.0.push(msg.into());
        }
    }
    fn finish(self, what: &str) {
        assert!(self.0.is_empty(), "{what}: {} problem(s):\n  - {}", self.0.len(), self.0.join("\n  - "));
    }
}

/// The default gateway.toml (documented defaults, used by the image and compose).
fn gateway_toml() -> toml::Value {
    read(&deploy("gateway.toml")).parse::<toml::Table>().map(toml::Value::Table).expect("deploy/gateway.toml parses")
}

fn listen_port(config: &toml::Value) -> u16 {
    let listen = config["server"]["listen"].as_str().expect("server.listen");
    listen.rsplit(':').next().unwrap().parse().expect("server.listen has a port")
}

// ---------------------------------------------------------------------------
// PromQL: the metric names an expression uses

const PROMQL_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "inf",
    "nan",
    "Inf",
    "NaN",
];

/// Metric names referenced by a PromQL expression (Grafana variables such as
/// `$__rate_interval` or `$instance` allowed). Label matchers, ranges, strings,
/// function names, keywords and grouping label lists are not metric names.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_string = |i: &mut usize| {
        let quote = chars[*i];
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    let skip_until = |i: &mut usize, close: char| {
        while *i < chars.len() && chars[*i] != close {
            if matches!(chars[*i], '"' | '\'' | '`') {
                let quote = chars[*i];
                *i += 1;
                while *i < chars.len() && chars[*i] != quote {
                    if chars[*i] == '\\' {
                        *i += 1;
                    }
                    *i += 1;
                }
            }
            *i += 1;
        }
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            skip_string(&mut i);
        } else if c == '{' {
            skip_until(&mut i, '}');
        } else if c == '[' {
            skip_until(&mut i, ']');
        } else if c == '$' {
            i += 1;
            if i < chars.len() && chars[i] == '{' {
                skip_until(&mut i, '}');
            } else {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let next = chars.get(j).copied();
            if matches!(word.as_str(), "by" | "without" | "on" | "ignoring" | "group_left" | "group_right")
                && next == Some('(')
            {
                i = j + 1;
                skip_until(&mut i, ')');
            } else if next == Some('(') || PROMQL_KEYWORDS.contains(&word.as_str()) {
                // a function, an aggregation or a keyword
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn promql_metric_name_extraction() {
    let names = promql_metric_names(
        r#"sum by (kind) (rate(rtcio_gateway_a_total{job=~"$job",x="y{z}"}[$__rate_interval])) / ignoring(le) group_left
           (histogram_quantile(0.99, sum without (instance) (rate(b_bucket[5m] offset 1h)))) > bool 1e3 and on() up == 0"#,
    );
    assert_eq!(names, BTreeSet::from(["rtcio_gateway_a_total".into(), "b_bucket".into(), "up".into()]));
}

/// Every PromQL expression of the dashboard (panel targets and query variables).
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_string()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    walk(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"]["query"].as_str().or(v["query"].as_str()).unwrap_or("");
            // label_values(selector, label): the selector is PromQL.
            if let Some(inner) = q.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')) {
                let selector = inner.rsplit_once(',').map(|(sel, _)| sel).unwrap_or(inner);
                out.push((format!("variable {}", v["name"]), selector.trim().to_string()));
            }
        }
    }
    out
}

/// Every alerting/recording rule of a rules file: (name, expr).
fn rule_exprs(rules: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for g in rules["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let name = r["alert"].as_str().or(r["record"].as_str()).expect("alert or record name");
            out.push((name.to_string(), s(&r["expr"], "expr").to_string()));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Prometheus

#[test]
fn prometheus_config_rules_and_rule_unit_tests_pass_promtool() {
    let promtool = promtool();
    for args in [
        vec!["check", "config", "deploy/prometheus/prometheus.yml"],
        vec!["check", "rules", "deploy/prometheus/alerts.yml"],
        vec!["test", "rules", "deploy/prometheus/alerts.test.yml"],
    ] {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut full: Vec<&str> = args.iter().map(String::as_str).collect();
        let path = repo().join(full.pop().unwrap());
        full.push(path.to_str().unwrap());
        let out = run(&promtool, &full, None);
        println!("promtool {}:\n{}", full.join(" "), text(&out));
        assert!(out.status.success(), "promtool {} failed:\n{}", full.join(" "), text(&out));
    }

    let mut p = Problems::default();
    let config = yaml(&deploy("prometheus/prometheus.yml"));
    // check config found the rule file; make sure it is the one we ship.
    let rule_files: Vec<&str> =
        config["rule_files"].as_array().expect("rule_files").iter().map(|v| s(v, "rule file")).collect();
    p.check(rule_files == ["alerts.yml"], format!("prometheus.yml should load alerts.yml, loads {rule_files:?}"));
    let jobs: Vec<&Value> = config["scrape_configs"].as_array().expect("scrape_configs").iter().collect();
    let gateway_job = jobs.iter().find(|j| j["job_name"] == "rtcio-gateway").expect("a scrape job named rtcio-gateway");
    p.check(
        gateway_job["metrics_path"].as_str().unwrap_or("/metrics") == "/metrics",
        "the gateway job should scrape /metrics",
    );
    let port = listen_port(&gateway_toml());
    let targets = &gateway_job["static_configs"][0]["targets"];
    p.check(
        targets
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t.as_str().is_some_and(|t| t.ends_with(&format!(":{port}"))))),
        format!("the gateway targets {targets} should use the gateway's port {port}"),
    );

    let alerts = yaml(&deploy("prometheus/alerts.yml"));
    let rules = rule_exprs(&alerts);
    let expr_of = |name: &str| rules.iter().find(|(n, _)| n == name).map(|(_, e)| e.as_str());
    // The alerts the issue asks for, with the conditions it names.
    for (alert, must_contain) in [
        ("RtcioGatewayDown", r#"up{job="rtcio-gateway"} == 0"#),
        ("RtcioGatewayRecordingDiskNearlyFull", "rtcio_gateway_recordings_free_bytes <"),
        ("RtcioGatewayPipelineErrors", "increase(rtcio_gateway_pipeline_errors_total["),
        ("RtcioGatewayRecordingNoData", "rtcio_gateway_recording_data_age_seconds > 10"),
        ("RtcioGatewayKeyframeWait", "rtcio_gateway_media_keyframe_wait_seconds > 10"),
        ("RtcioGatewayRelayRestarting", "increase(rtcio_gateway_relay_restarts_total["),
        ("RtcioGatewayWebhookDeliveriesFailing", "rtcio_gateway_webhook_deliveries_total{result=~\"failed|dropped\"}"),
    ] {
        match expr_of(alert) {
            None => p.0.push(format!("alerts.yml has no alert {alert}")),
            Some(e) => p.check(e.contains(must_contain), format!("{alert}: `{e}` should contain `{must_contain}`")),
        }
    }
    for g in alerts["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().unwrap_or("?");
            p.check(
                matches!(r["labels"]["severity"].as_str(), Some("critical" | "warning")),
                format!("{name}: severity label should be critical or warning"),
            );
            p.check(r["annotations"]["summary"].is_string(), format!("{name}: no summary annotation"));
            p.check(r["annotations"]["description"].is_string(), format!("{name}: no description annotation"));
        }
    }

    // The unit tests cover at least the disk and the data-age alerts, firing.
    let tests = yaml(&deploy("prometheus/alerts.test.yml"));
    let firing: BTreeSet<&str> = tests["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .filter(|a| a["exp_alerts"].as_array().is_some_and(|e| !e.is_empty()))
        .map(|a| s(&a["alertname"], "alertname"))
        .collect();
    for alert in ["RtcioGatewayRecordingDiskNearlyFull", "RtcioGatewayRecordingNoData"] {
        p.check(firing.contains(alert), format!("alerts.test.yml never expects {alert} to fire"));
    }
    p.finish("Prometheus configuration");
}

// ---------------------------------------------------------------------------
// Grafana

#[test]
fn grafana_dashboard_is_well_formed_valid_promql_and_covers_the_gateway() {
    let path = deploy("grafana/dashboards/rtcio-gateway.json");
    let dashboard: Value = serde_json::from_str(&read(&path)).expect("the dashboard is valid JSON");
    let mut p = Problems::default();
    p.check(dashboard["uid"].is_string() && dashboard["title"].is_string(), "the dashboard needs a uid and a title");
    p.check(dashboard["schemaVersion"].as_u64().is_some(), "the dashboard needs a schemaVersion");

    // A data source variable of type prometheus, used by every panel and target.
    let vars = dashboard["templating"]["list"].as_array().expect("templating.list");
    let ds_var = vars.iter().find(|v| v["type"] == "datasource").expect("a data source template variable");
    p.check(ds_var["query"] == "prometheus", "the data source variable should list prometheus data sources");
    let ds_ref = format!("${{{}}}", s(&ds_var["name"], "variable name"));
    let mut ids = BTreeSet::new();
    let mut panels = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("?");
        let id = panel["id"].as_u64().unwrap_or(0);
        p.check(ids.insert(id) && id > 0, format!("panel {title}: id {id} missing or duplicated"));
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap_or(99), grid["w"].as_u64().unwrap_or(99));
        p.check(
            x + w <= 24 && grid["h"].as_u64().is_some() && grid["y"].as_u64().is_some(),
            format!("panel {title}: bad gridPos {grid}"),
        );
        if panel["type"] == "row" {
            continue;
        }
        panels += 1;
        p.check(
            panel["datasource"]["uid"] == ds_ref.as_str(),
            format!("panel {title}: data source should be {ds_ref}"),
        );
        let targets = panel["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        p.check(!targets.is_empty(), format!("panel {title}: no queries"));
        for t in targets {
            p.check(t["expr"].is_string(), format!("panel {title}: a target without expr"));
            p.check(
                t["datasource"]["uid"] == ds_ref.as_str(),
                format!("panel {title}: a target's data source is not {ds_ref}"),
            );
        }
    }
    p.check(panels >= 10, format!("only {panels} panels"));

    // What the dashboard must show (issue: rooms, members, signaling rate,
    // streams, bitrate, loss, keyframe waits, recordings, bytes written, disk
    // free, pipeline errors, webhook failures, join refusals).
    let exprs = dashboard_exprs(&dashboard);
    let used: BTreeSet<String> = exprs.iter().flat_map(|(_, e)| promql_metric_names(e)).collect();
    for metric in [
        "rtcio_gateway_signaling_rooms",
        "rtcio_gateway_signaling_room_members",
        "rtcio_gateway_signaling_relayed_messages_total",
        "rtcio_gateway_participant_streams_active",
        "rtcio_gateway_participant_rtp_bytes_total",
        "rtcio_gateway_media_packets_lost_total",
        "rtcio_gateway_media_keyframe_wait_seconds",
        "rtcio_gateway_media_first_keyframe_seconds_bucket",
        "rtcio_gateway_recordings_active",
        "rtcio_gateway_recordings_total",
        "rtcio_gateway_recording_bytes_written_total",
        "rtcio_gateway_recordings_free_bytes",
        "rtcio_gateway_recording_data_age_seconds",
        "rtcio_gateway_pipeline_errors_total",
        "rtcio_gateway_relay_restarts_total",
        "rtcio_gateway_webhook_deliveries_total",
        "rtcio_gateway_signaling_joins_total",
    ] {
        p.check(used.contains(metric), format!("no panel uses {metric}"));
    }
    p.check(
        exprs.iter().any(|(_, e)| e.contains("rtcio_gateway_signaling_joins_total") && e.contains(r#"result!="ok""#)),
        "no panel shows join refusals (signaling_joins_total{result!=\"ok\"})",
    );

    // Every expression is valid PromQL: promtool parses them as recording rules
    // (Grafana's variables replaced by values of the right kind).
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, e)) in exprs.iter().enumerate() {
        let e = e.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$__interval", "15s");
        let e = e.replace("${job}", ".*").replace("$job", ".*").replace("${instance}", ".*").replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:expr{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = run(&promtool(), &["check", "rules", file.to_str().unwrap()], None);
    p.check(out.status.success(), format!("dashboard queries are not valid PromQL:\n{}", text(&out)));
    p.finish("Grafana dashboard");
}

// ---------------------------------------------------------------------------
// compose

/// Bind mounts of a compose service: (host path, container path).
type Binds = Vec<(PathBuf, String)>;
/// Named volumes of a compose service: (volume, container path).
type NamedVolumes = Vec<(String, String)>;

fn compose_mounts(service: &Value, base: &Path) -> (Binds, NamedVolumes) {
    let mut binds = Vec::new();
    let mut named = Vec::new();
    for v in service["volumes"].as_array().into_iter().flatten() {
        let (source, target) = match v {
            Value::String(short) => {
                let mut parts = short.splitn(3, ':');
                (parts.next().unwrap().to_string(), parts.next().expect("volume target").to_string())
            }
            long => (s(&long["source"], "volume source").to_string(), s(&long["target"], "volume target").to_string()),
        };
        if source.starts_with('.') || source.starts_with('/') || source.starts_with('~') {
            binds.push((base.join(&source), target));
        } else {
            named.push((source, target));
        }
    }
    (binds, named)
}

/// The host path a container path comes from, through the bind mounts.
fn host_path(binds: &[(PathBuf, String)], container: &str) -> Option<PathBuf> {
    binds
        .iter()
        .filter(|(_, target)| {
            container == target || container.starts_with(&format!("{}/", target.trim_end_matches('/')))
        })
        .max_by_key(|(_, target)| target.len())
        .map(|(host, target)| {
            let rest = container[target.len()..].trim_start_matches('/');
            if rest.is_empty() { host.clone() } else { host.join(rest) }
        })
}

#[test]
fn compose_file_parses_and_every_file_it_uses_exists() {
    let base = deploy("");
    let compose = yaml(&deploy("compose.yaml"));
    let services = compose["services"].as_object().expect("services");
    let declared: BTreeSet<&String> = compose["volumes"].as_object().map(|v| v.keys().collect()).unwrap_or_default();
    let mut p = Problems::default();
    for want in ["gateway", "nginx-rtmp", "prometheus", "grafana"] {
        p.check(services.contains_key(want), format!("compose.yaml has no service {want}"));
    }
    for (name, svc) in services {
        if let Some(build) = svc.get("build") {
            let (context, dockerfile) = match build {
                Value::String(c) => (c.as_str(), "Dockerfile"),
                b => (s(&b["context"], "build.context"), b["dockerfile"].as_str().unwrap_or("Dockerfile")),
            };
            let context = base.join(context);
            p.check(context.is_dir(), format!("{name}: build context {} does not exist", context.display()));
            p.check(
                context.join(dockerfile).is_file(),
                format!("{name}: {dockerfile} not found in {}", context.display()),
            );
        } else {
            p.check(svc["image"].is_string(), format!("{name}: neither build nor image"));
        }
        let (binds, named) = compose_mounts(svc, &base);
        for (host, target) in &binds {
            p.check(
                host.exists(),
                format!("{name}: bind mount source {} (-> {target}) does not exist", host.display()),
            );
        }
        for (volume, _) in &named {
            p.check(declared.contains(volume), format!("{name}: volume {volume} is not declared under volumes:"));
        }
    }

    // gateway: host networking (WebRTC), the config where the image's command
    // reads it, recordings in a volume at the image's VOLUME.
    let gw = &compose["services"]["gateway"];
    p.check(gw["network_mode"] == "host", "gateway: network_mode should be host (WebRTC candidates)");
    let (binds, named) = compose_mounts(gw, &base);
    let config_path = "/etc/rtcio-gateway/gateway.toml";
    p.check(
        host_path(&binds, config_path).is_some_and(|h| h.is_file()),
        format!("gateway: nothing from the repository is mounted at {config_path}"),
    );
    p.check(
        named.iter().any(|(_, t)| t == "/var/lib/rtcio-gateway/recordings"),
        "gateway: the recordings volume should be mounted at /var/lib/rtcio-gateway/recordings",
    );
    p.check(gw["stop_grace_period"].is_string(), "gateway: stop_grace_period should leave time to finalise recordings");

    // prometheus: the config file it is told to load comes from deploy/prometheus,
    // and the rule files it names sit beside it in the container.
    let prom = &compose["services"]["prometheus"];
    let (binds, _) = compose_mounts(prom, &base);
    let config_arg = prom["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix("--config.file="))
        .expect("prometheus: --config.file in command");
    match host_path(&binds, config_arg) {
        Some(host) if host.is_file() => {
            let config = yaml(&host);
            let dir = Path::new(config_arg).parent().unwrap();
            for rule in config["rule_files"].as_array().into_iter().flatten() {
                let in_container = dir.join(s(rule, "rule file"));
                p.check(
                    host_path(&binds, in_container.to_str().unwrap()).is_some_and(|h| h.is_file()),
                    format!("prometheus: rule file {} is not mounted", in_container.display()),
                );
            }
            let targets = config["scrape_configs"].to_string();
            if targets.contains("host.docker.internal") {
                p.check(
                    prom["extra_hosts"].to_string().contains("host.docker.internal:host-gateway"),
                    "prometheus scrapes host.docker.internal: extra_hosts needs host.docker.internal:host-gateway",
                );
            }
        }
        _ => p.0.push(format!("prometheus: {config_arg} is not mounted from the repository")),
    }

    // grafana: provisioning from deploy/grafana, the data source is the
    // prometheus service, the dashboard provider's path holds our dashboard.
    let grafana = &compose["services"]["grafana"];
    let (binds, _) = compose_mounts(grafana, &base);
    for kind in ["datasources", "dashboards"] {
        let dir = format!("/etc/grafana/provisioning/{kind}");
        match host_path(&binds, &dir) {
            Some(host) if host.is_dir() => {
                let files: Vec<_> = std::fs::read_dir(&host).unwrap().map(|e| e.unwrap().path()).collect();
                p.check(
                    files.iter().any(|f| f.extension().is_some_and(|e| e == "yaml" || e == "yml")),
                    format!("grafana: no provisioning file in {}", host.display()),
                );
            }
            _ => p.0.push(format!("grafana: {dir} is not mounted from the repository")),
        }
    }
    let datasources = yaml(&deploy("grafana/provisioning/datasources/prometheus.yaml"));
    let ds = &datasources["datasources"][0];
    p.check(ds["type"] == "prometheus", "grafana: the provisioned data source should be of type prometheus");
    let url = url::Url::parse(s(&ds["url"], "datasource url")).expect("data source url");
    p.check(
        url.host_str().is_some_and(|h| services.contains_key(h)) && url.port() == Some(9090),
        format!("grafana: data source url {url} should point at the prometheus service on 9090"),
    );
    for (key, value) in grafana["environment"].as_object().into_iter().flatten() {
        if let Some(path) = value.as_str().filter(|v| v.starts_with("/etc/grafana/")) {
            p.check(
                host_path(&binds, path).is_some_and(|h| h.exists()),
                format!("grafana: {key}={path} is not mounted from the repository"),
            );
        }
    }
    let providers = yaml(&deploy("grafana/provisioning/dashboards/rtcio-gateway.yaml"));
    let provider_path = s(&providers["providers"][0]["options"]["path"], "provider options.path");
    p.check(
        host_path(&binds, provider_path).is_some_and(|h| h.join("rtcio-gateway.json").is_file()),
        format!("grafana: the dashboard provider's path {provider_path} does not hold rtcio-gateway.json"),
    );

    // nginx-rtmp: the mounted config is the one its image's command loads.
    let nginx = &compose["services"]["nginx-rtmp"];
    let (binds, _) = compose_mounts(nginx, &base);
    let dockerfile = read(&deploy("nginx-rtmp/Dockerfile"));
    let conf_arg = dockerfile
        .lines()
        .find(|l| l.starts_with("CMD"))
        .and_then(|l| {
            let args: Vec<String> = serde_json::from_str(l.trim_start_matches("CMD").trim()).ok()?;
            args.iter().position(|a| a == "-c").map(|i| args[i + 1].clone())
        })
        .expect("nginx-rtmp/Dockerfile: CMD [..., \"-c\", FILE]");
    p.check(
        host_path(&binds, &conf_arg)
            .is_some_and(|h| h == deploy("nginx-rtmp/./nginx.conf") || h == deploy("nginx-rtmp/nginx.conf")),
        format!("nginx-rtmp: {conf_arg} should be deploy/nginx-rtmp/nginx.conf"),
    );
    p.finish("compose.yaml");
}

#[test]
fn nginx_rtmp_config_passes_nginx_t() {
    let nginx = tool("nginx", "nginx-light");
    let module = Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so");
    assert!(module.exists(), "{} is missing: run scripts/install-deps.sh (libnginx-mod-rtmp)", module.display());
    let conf = read(&deploy("nginx-rtmp/nginx.conf"));
    assert!(
        conf.contains(&format!("load_module {};", module.display())),
        "nginx.conf should load {}",
        module.display()
    );
    // Same file, with the pid file in a directory of ours (nginx -t touches it).
    let dir = tempfile::tempdir().unwrap();
    let pid_line = conf.lines().find(|l| l.trim_start().starts_with("pid ")).expect("a pid directive").to_string();
    let conf = conf.replace(&pid_line, &format!("pid {}/nginx.pid;", dir.path().display()));
    let file = dir.path().join("nginx.conf");
    std::fs::write(&file, conf).unwrap();
    let out =
        run(&nginx, &["-t", "-e", "stderr", "-p", dir.path().to_str().unwrap(), "-c", file.to_str().unwrap()], None);
    println!("{}", text(&out));
    assert!(out.status.success() && text(&out).contains("test is successful"), "nginx -t failed:\n{}", text(&out));
}

// ---------------------------------------------------------------------------
// Kubernetes

#[test]
fn kubernetes_manifests_are_complete_and_consistent() {
    let dir = deploy("k8s");
    let mut docs: Vec<(String, Value)> = Vec::new();
    let mut files = Vec::new();
    let mut p = Problems::default();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path.file_name().unwrap().to_str().unwrap().to_string());
            for doc in yaml_docs(&path) {
                if doc.is_null() {
                    continue;
                }
                let file = path.file_name().unwrap().to_str().unwrap().to_string();
                p.check(doc["apiVersion"].is_string(), format!("{file}: a document without apiVersion"));
                p.check(doc["kind"].is_string(), format!("{file}: a document without kind"));
                if doc["kind"] != "Kustomization" {
                    p.check(
                        doc["metadata"]["name"].is_string(),
                        format!("{file}: a {} without metadata.name", doc["kind"]),
                    );
                }
                docs.push((file, doc));
            }
        }
    }
    let find = |kind: &str| -> Vec<&Value> { docs.iter().filter(|(_, d)| d["kind"] == kind).map(|(_, d)| d).collect() };
    for kind in ["Namespace", "ConfigMap", "Secret", "Deployment", "Service", "PersistentVolumeClaim", "Kustomization"]
    {
        p.check(!find(kind).is_empty(), format!("no {kind} in deploy/k8s"));
    }
    p.finish("deploy/k8s documents");
    let mut p = Problems::default();

    // kustomization lists every manifest but the Secret example.
    let kustomization = find("Kustomization")[0];
    let resources: BTreeSet<&str> =
        kustomization["resources"].as_array().expect("resources").iter().map(|r| s(r, "resource")).collect();
    for r in &resources {
        p.check(dir.join(r).is_file(), format!("kustomization: {r} does not exist"));
    }
    for f in &files {
        if f != "kustomization.yaml" && !f.contains("example") {
            p.check(resources.contains(f.as_str()), format!("kustomization does not list {f}"));
        }
    }
    let namespace = s(&find("Namespace")[0]["metadata"]["name"], "namespace name");
    for (file, d) in &docs {
        if !matches!(d["kind"].as_str(), Some("Namespace" | "Kustomization")) {
            p.check(
                d["metadata"]["namespace"] == namespace,
                format!("{file}: {} not in namespace {namespace}", d["kind"]),
            );
        }
    }

    let deployment = find("Deployment")[0];
    let pod = &deployment["spec"]["template"];
    let spec = &pod["spec"];
    let containers = spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    let c = &containers[0];
    let ports = c["ports"].as_array().expect("container ports");
    let port_of = |p: &Value| -> Option<u64> {
        match p {
            Value::Number(n) => n.as_u64(),
            Value::String(name) => {
                ports.iter().find(|cp| cp["name"] == name.as_str()).and_then(|cp| cp["containerPort"].as_u64())
            }
            _ => None,
        }
    };
    let configmap = find("ConfigMap")[0];
    let gateway_toml_text = s(&configmap["data"]["gateway.toml"], "ConfigMap data gateway.toml");
    let config: toml::Value =
        gateway_toml_text.parse::<toml::Table>().map(toml::Value::Table).expect("the ConfigMap's gateway.toml parses");
    let port = listen_port(&config) as u64;
    p.check(ports.iter().any(|cp| cp["containerPort"] == port), format!("no container port {port} (server.listen)"));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        p.check(get["path"] == path, format!("{probe} should GET {path}, is {}", get["path"]));
        p.check(
            port_of(&get["port"]) == Some(port),
            format!("{probe} port {} is not the container port {port}", get["port"]),
        );
    }
    let args: Vec<&str> = c["args"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let config_path = args.iter().position(|a| *a == "--config").map(|i| args[i + 1]).expect("--config in args");

    // Security context: non-root, read-only root, nothing to escalate.
    let psc = &spec["securityContext"];
    let csc = &c["securityContext"];
    p.check(psc["runAsNonRoot"] == true || csc["runAsNonRoot"] == true, "runAsNonRoot should be true");
    p.check(psc["runAsUser"].as_u64().is_some_and(|u| u != 0), "runAsUser should be a non-zero uid");
    p.check(csc["readOnlyRootFilesystem"] == true, "readOnlyRootFilesystem should be true");
    p.check(csc["allowPrivilegeEscalation"] == false, "allowPrivilegeEscalation should be false");
    p.check(csc["capabilities"]["drop"].to_string().contains("ALL"), "capabilities should drop ALL");
    let requests = &c["resources"]["requests"];
    p.check(requests["cpu"].is_string() && requests["memory"].is_string(), "resources.requests needs cpu and memory");
    p.check(
        spec["terminationGracePeriodSeconds"].as_u64().is_some_and(|t| t >= 30),
        "terminationGracePeriodSeconds should leave time to finalise recordings (>= 30)",
    );

    // Volumes: the config from the ConfigMap where --config points, the
    // recordings directory of that config on the PVC; every other mount is
    // read-only or /tmp.
    let volumes = spec["volumes"].as_array().expect("volumes");
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name);
    let recordings_dir = config["recording"]["dir"].as_str().expect("recording.dir in the ConfigMap");
    let pvc_name = s(&find("PersistentVolumeClaim")[0]["metadata"]["name"], "pvc name");
    let mut recordings_mounted = false;
    let mut config_mounted = false;
    for m in c["volumeMounts"].as_array().expect("volumeMounts") {
        let path = s(&m["mountPath"], "mountPath");
        let v = volume(s(&m["name"], "mount name")).unwrap_or_else(|| panic!("volume {} is not defined", m["name"]));
        if path == recordings_dir {
            recordings_mounted = true;
            p.check(
                v["persistentVolumeClaim"]["claimName"] == pvc_name,
                format!("{path} should be the PVC {pvc_name}"),
            );
            p.check(m["readOnly"] != true, "the recordings volume must be writable");
        } else if v["configMap"].is_object() {
            p.check(
                v["configMap"]["name"] == configmap["metadata"]["name"],
                "the config volume should use the ConfigMap",
            );
            config_mounted |= Path::new(path).join("gateway.toml") == Path::new(config_path);
            p.check(m["readOnly"] == true, format!("{path} should be read-only"));
        } else if path != "/tmp" {
            p.check(m["readOnly"] == true, format!("{path} should be read-only"));
        }
    }
    p.check(recordings_mounted, format!("recording.dir {recordings_dir} is not mounted from the PVC"));
    p.check(config_mounted, format!("--config {config_path} is not the ConfigMap's gateway.toml"));

    // The Service selects the pod and targets the container port.
    let service = find("Service")[0];
    let labels = pod["metadata"]["labels"].as_object().expect("pod labels");
    for (k, v) in service["spec"]["selector"].as_object().expect("service selector") {
        p.check(labels.get(k) == Some(v), format!("service selector {k}={v} does not match the pod"));
    }
    for sp in service["spec"]["ports"].as_array().expect("service ports") {
        p.check(
            port_of(&sp["targetPort"]) == Some(port),
            format!("service targetPort {} is not {port}", sp["targetPort"]),
        );
    }
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    for (k, v) in selector.as_object().expect("matchLabels") {
        p.check(labels.get(k) == Some(v), format!("deployment selector {k}={v} does not match the pod"));
    }

    // Secrets: every secretKeyRef names the example Secret and one of its keys
    // (or is optional). The config is then checked by the gateway itself, with
    // the environment the Deployment gives it.
    let secret = find("Secret")[0];
    let mut env: Vec<(String, String)> = Vec::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let name = s(&e["name"], "env name").to_string();
        if let Some(v) = e["value"].as_str() {
            env.push((name, v.to_string()));
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            p.check(
                r["name"] == secret["metadata"]["name"],
                format!("{name}: secret {} is not the example's", r["name"]),
            );
            let key = r["key"].as_str().unwrap();
            match secret["stringData"][key].as_str() {
                Some(v) => env.push((name, format!("test-{}-0123456789abcdef", v.len()))),
                None => p.check(
                    r.get("optional") == Some(&Value::Bool(true)),
                    format!("{name}: key {key} missing and not optional"),
                ),
            }
        }
    }
    for want in ["RTCIO_GATEWAY_API__TOKEN", "RTCIO_GATEWAY_WEBHOOKS__SECRET"] {
        p.check(env.iter().any(|(n, _)| n == want), format!("the Deployment does not set {want} from the Secret"));
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("gateway.toml");
    std::fs::write(&file, gateway_toml_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rtcio-gateway"))
        .args(["config", "--config", file.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    p.check(
        out.status.success(),
        format!(
            "the gateway refuses the ConfigMap's gateway.toml with the Deployment's environment ({}):\n{}",
            env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "),
            text(&out)
        ),
    );
    p.finish("deploy/k8s");
}

// ---------------------------------------------------------------------------
// systemd

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let analyze = tool("systemd-analyze", "systemd");
    let unit = read(&deploy("systemd/rtcio-gateway.service"));
    let directives: Vec<(String, String)> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';') && !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect();
    let get =
        |key: &str| -> Vec<&str> { directives.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect() };
    let mut p = Problems::default();
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX AF_NETLINK"),
        ("SystemCallFilter", "@system-service"),
        ("KillSignal", "SIGTERM"),
        ("Restart", "on-failure"),
        ("StateDirectory", "rtcio-gateway"),
    ] {
        p.check(get(key).contains(&value), format!("{key}={value} missing (has {:?})", get(key)));
    }
    p.check(!get("MemoryDenyWriteExecute").contains(&"yes"), "MemoryDenyWriteExecute=yes breaks ORC's run-time code");
    p.check(!get("User").is_empty() || get("DynamicUser") == ["yes"], "the service should run as its own user");
    let stop = get("TimeoutStopSec").first().and_then(|v| v.trim_end_matches('s').parse::<u64>().ok());
    let config = gateway_toml();
    // Shutdown grace, then finalising recordings, then up to 5 s of webhook delivery.
    let needed = config["server"]["shutdown_grace_secs"].as_integer().unwrap() as u64
        + config["recording"]["finish_timeout_secs"].as_integer().unwrap() as u64
        + 5;
    p.check(
        stop.is_some_and(|s| s > needed),
        format!("TimeoutStopSec {stop:?} should exceed shutdown grace + finish timeout + webhook flush ({needed} s)"),
    );
    // Recordings land in the state directory: the working directory is it and
    // the default recording.dir is relative.
    let state = format!("/var/lib/{}", get("StateDirectory")[0]);
    p.check(get("WorkingDirectory") == [state.as_str()], format!("WorkingDirectory should be {state}"));
    p.check(
        config["recording"]["dir"].as_str().is_some_and(|d| d.starts_with("./")),
        "the default recording.dir is no longer relative: the unit's StateDirectory no longer holds the recordings",
    );
    let exec = get("ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart");
    let exec_bin = exec[0].split_whitespace().next().unwrap();
    p.check(exec[0].ends_with("serve --config /etc/rtcio-gateway/gateway.toml"), format!("ExecStart: {}", exec[0]));

    // systemd-analyze verify needs the ExecStart binary to exist: point a copy
    // of the unit at the binary of this test run. Any warning is a failure.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("rtcio-gateway.service");
    std::fs::write(&copy, unit.replace(exec_bin, env!("CARGO_BIN_EXE_rtcio-gateway"))).unwrap();
    let out = run(&analyze, &["verify", copy.to_str().unwrap()], None);
    p.check(out.status.success() && text(&out).trim().is_empty(), format!("systemd-analyze verify:\n{}", text(&out)));

    // The sysusers snippet creates the unit's user.
    let sysusers = tool("systemd-sysusers", "systemd");
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let snippet = deploy("systemd/rtcio-gateway.sysusers");
    let out = run(&sysusers, &[&format!("--root={}", root.path().display()), snippet.to_str().unwrap()], None);
    p.check(
        out.status.success() && !text(&out).contains("Failed"),
        format!("systemd-sysusers {}:\n{}", snippet.display(), text(&out)),
    );
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap_or_default();
    for user in get("User") {
        p.check(
            passwd.lines().any(|l| l.starts_with(&format!("{user}:"))),
            format!("the sysusers snippet does not create {user}"),
        );
    }
    p.finish("systemd unit");
}

// ---------------------------------------------------------------------------
// Dockerfile

struct Stage {
    image: String,
    instructions: Vec<(String, String)>,
}

fn dockerfile_stages(text: &str) -> Vec<Stage> {
    // Join continuation lines; comment lines inside a continuation are dropped.
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            logical.push(std::mem::take(&mut current));
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for l in logical {
        let (keyword, rest) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            let image = rest.split_whitespace().find(|w| !w.starts_with("--")).unwrap().to_string();
            stages.push(Stage { image, instructions: Vec::new() });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((keyword, rest.trim().to_string()));
        }
    }
    stages
}

/// Packages named by `apt-get install` in a stage's RUN instructions.
fn apt_packages(stage: &Stage) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (k, cmd) in &stage.instructions {
        if k != "RUN" {
            continue;
        }
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            if words[i].ends_with("apt-get") && words.get(i + 1) == Some(&"install") {
                i += 2;
                while i < words.len() && !matches!(words[i], "&&" | ";" | "||" | "|") {
                    if !words[i].starts_with('-') {
                        out.insert(words[i].to_string());
                    }
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
    }
    out
}

fn instruction<'a>(stage: &'a Stage, keyword: &str) -> Vec<&'a str> {
    stage.instructions.iter().filter(|(k, _)| k == keyword).map(|(_, v)| v.as_str()).collect()
}

/// The GStreamer elements of a gst-launch description (caps become capsfilter).
fn launch_elements(description: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for segment in description.split('!') {
        let first = segment.split_whitespace().next().unwrap_or("");
        if first.is_empty() || first.ends_with('.') {
            continue; // a pad reference such as `mux.`
        }
        if first.contains('/') {
            out.insert("capsfilter".to_string());
        } else {
            out.insert(first.to_string());
        }
    }
    out
}

/// Every element used by pipelines/*.toml, with the templates using it.
fn template_elements() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(repo().join("pipelines")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let t: toml::Table = read(&path).parse().expect("template parses");
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let mut descriptions = vec![t["output"].as_str().expect("output").to_string()];
        for part in ["video", "audio"] {
            if let Some(branches) = t.get(part).and_then(|b| b.as_table()) {
                descriptions.extend(branches.values().map(|b| b.as_str().unwrap().to_string()));
            }
        }
        for d in descriptions {
            for e in launch_elements(&d) {
                out.entry(e).or_default().insert(name.clone());
            }
        }
    }
    out
}

/// The Debian package that ships a file (merged /usr: try the canonical path too).
fn debian_package_of(file: &Path) -> Option<String> {
    let dpkg = tool("dpkg-query", "dpkg");
    let mut candidates = vec![file.to_path_buf()];
    if let Ok(c) = std::fs::canonicalize(file) {
        candidates.push(c);
    }
    if let Ok(rest) = file.strip_prefix("/lib") {
        candidates.push(Path::new("/usr/lib").join(rest));
    }
    for c in candidates {
        let out = run(&dpkg, &["-S", c.to_str().unwrap()], None);
        if out.status.success() {
            let line = String::from_utf8_lossy(&out.stdout).lines().next()?.to_string();
            let pkg = line.split(':').next()?.trim().to_string();
            return Some(pkg);
        }
    }
    None
}

/// Installed packages `roots` depend on (Depends and Pre-Depends), recursively.
fn dependency_closure(roots: &BTreeSet<String>) -> BTreeSet<String> {
    let dpkg = tool("dpkg-query", "dpkg");
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.iter().cloned().collect();
    while let Some(pkg) = todo.pop() {
        if !seen.insert(pkg.clone()) {
            continue;
        }
        let out = run(&dpkg, &["-W", "-f=${Depends}, ${Pre-Depends}", &pkg], None);
        if !out.status.success() {
            continue; // not installed here, or a virtual package
        }
        for alternative in String::from_utf8_lossy(&out.stdout).split(',') {
            for dep in alternative.split('|') {
                let name = dep.split_whitespace().next().unwrap_or("").split(':').next().unwrap().to_string();
                if !name.is_empty() && !seen.contains(&name) {
                    todo.push(name);
                }
            }
        }
    }
    seen
}

#[test]
fn dockerfile_runtime_stage_has_exactly_the_gstreamer_packages_the_templates_need() {
    let dockerfile = read(&deploy("Dockerfile"));
    let stages = dockerfile_stages(&dockerfile);
    assert!(stages.len() >= 2, "a multi-stage Dockerfile");
    let builder = &stages[0];
    let runtime = stages.last().unwrap();
    let mut p = Problems::default();

    p.check(
        builder.image == "rust:1.95-bookworm",
        format!("builder stage should be rust:1.95-bookworm, is {}", builder.image),
    );
    let build_packages = apt_packages(builder);
    for pkg in ["pkg-config", "libgstreamer1.0-dev", "libgstreamer-plugins-base1.0-dev"] {
        p.check(build_packages.contains(pkg), format!("builder stage does not install {pkg}"));
    }
    p.check(
        instruction(builder, "RUN").iter().any(|r| r.contains("cargo build --release --locked")),
        "builder stage should run cargo build --release --locked",
    );
    p.check(
        runtime.image == "debian:bookworm-slim",
        format!("runtime stage should be debian:bookworm-slim, is {}", runtime.image),
    );
    let user = instruction(runtime, "USER");
    p.check(
        user.last().is_some_and(|u| !matches!(u.split(':').next().unwrap(), "root" | "0")),
        format!("runtime stage should switch to a non-root USER, has {user:?}"),
    );
    let gateway = gateway_toml();
    let port = listen_port(&gateway);
    p.check(
        instruction(runtime, "EXPOSE").iter().any(|e| e.split_whitespace().any(|w| w == port.to_string())),
        format!("EXPOSE {port}"),
    );
    let volume = "/var/lib/rtcio-gateway/recordings";
    p.check(instruction(runtime, "VOLUME").iter().any(|v| v.contains(volume)), format!("VOLUME {volume}"));
    // The default recording.dir ("./recordings") resolves into the volume.
    let workdir = instruction(runtime, "WORKDIR").last().map(|w| PathBuf::from(*w));
    let recordings = workdir.map(|w| w.join(gateway["recording"]["dir"].as_str().unwrap()));
    p.check(
        recordings.as_ref().is_some_and(|r| {
            r.components().collect::<PathBuf>() == Path::new(volume).components().collect::<PathBuf>()
        }),
        format!("WORKDIR + recording.dir = {recordings:?}, not the volume {volume}"),
    );
    let health = instruction(runtime, "HEALTHCHECK");
    p.check(
        health.iter().any(|h| h.contains(&format!(":{port}/healthz"))),
        format!("HEALTHCHECK should request /healthz on port {port}: {health:?}"),
    );
    let json_args = |k: &str| -> Vec<String> {
        instruction(runtime, k)
            .last()
            .map(|v| {
                serde_json::from_str::<Vec<String>>(v).unwrap_or_else(|_| panic!("{k} should be a JSON array: {v}"))
            })
            .unwrap_or_default()
    };
    let command: Vec<String> = json_args("ENTRYPOINT").into_iter().chain(json_args("CMD")).collect();
    p.check(
        command == ["rtcio-gateway", "serve", "--config", "/etc/rtcio-gateway/gateway.toml"],
        format!("ENTRYPOINT + CMD should run `rtcio-gateway serve --config /etc/rtcio-gateway/gateway.toml`, run {command:?}"),
    );
    p.check(
        instruction(runtime, "COPY")
            .iter()
            .any(|c| c.starts_with("deploy/gateway.toml ") && c.ends_with(" /etc/rtcio-gateway/gateway.toml")),
        "the runtime stage should COPY deploy/gateway.toml to /etc/rtcio-gateway/gateway.toml",
    );
    let ignore = read(&repo().join(".dockerignore"));
    for must in ["target", ".git"] {
        p.check(ignore.lines().any(|l| l.trim() == must), format!(".dockerignore should exclude {must}"));
    }

    // Every element of every template, through its plugin file, to its package.
    let packages = apt_packages(runtime);
    println!("runtime packages: {packages:?}");
    let inspect = tool("gst-inspect-1.0", "gstreamer1.0-tools");
    // gst-plugins-rs (rtpav1depay) is not packaged in Debian 12: the template
    // marks the AV1 branch as optional and the gateway reports it disabled.
    const NOT_IN_DEBIAN_12: &[&str] = &["rtpav1depay"];
    let mut needed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // The room composite's own elements (src/composite/pipeline.rs), besides its templates'.
    const COMPOSITE_ELEMENTS: &[&str] = &[
        "compositor", "audiomixer", "videotestsrc", "audiotestsrc", "textoverlay", "level", "queue",
        "videoconvert", "rtpvp8depay", "rtpvp9depay", "rtph264depay", "rtpopusdepay", "vp8dec", "vp9dec",
        "avdec_h264", "opusdec", "h264parse",
    ];
    let mut elements = template_elements();
    for element in COMPOSITE_ELEMENTS {
        elements.entry(element.to_string()).or_default().insert("the composite pipeline".into());
    }
    for (element, templates) in elements {
        let out = run(&inspect, &[&element], None);
        let filename = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.trim().strip_prefix("Filename").map(|f| f.trim().to_string()));
        let Some(filename) = filename.filter(|_| out.status.success()) else {
            if NOT_IN_DEBIAN_12.contains(&element.as_str()) {
                println!("{element} ({templates:?}): not available in Debian 12, its codec branch is optional");
            } else {
                p.0.push(format!(
                    "gst-inspect-1.0 {element} (used by {templates:?}) failed: run scripts/install-deps.sh, or the element does not exist\n{}",
                    text(&out)
                ));
            }
            continue;
        };
        match debian_package_of(Path::new(&filename)) {
            Some(pkg) => {
                println!("{element:<16} {filename} -> {pkg}");
                p.check(
                    packages.contains(&pkg),
                    format!("{element} ({templates:?}) is in {pkg}, which the runtime stage does not install"),
                );
                needed.entry(pkg).or_default().insert(element);
            }
            None => p.0.push(format!("{element}: no Debian package ships {filename} (dpkg -S)")),
        }
    }

    // The libraries the binary links must come with those packages (or be in
    // the base image: Priority required).
    let ldd = tool("ldd", "libc-bin");
    let out = run(&ldd, &[env!("CARGO_BIN_EXE_rtcio-gateway")], None);
    assert!(out.status.success(), "ldd: {}", text(&out));
    let closure = dependency_closure(&packages);
    let dpkg = tool("dpkg-query", "dpkg");
    let mut linked = BTreeSet::new();
    for lib in
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split("=>").nth(1)?.split_whitespace().next())
    {
        let Some(pkg) = debian_package_of(Path::new(lib)) else {
            p.0.push(format!("the binary links {lib}, which no Debian package ships"));
            continue;
        };
        linked.insert(pkg.clone());
        let priority = run(&dpkg, &["-W", "-f=${Priority}", &pkg], None);
        let required = String::from_utf8_lossy(&priority.stdout).trim() == "required";
        p.check(
            closure.contains(&pkg) || required,
            format!("the binary links {lib} from {pkg}, which the runtime packages do not bring in"),
        );
    }

    // Nothing else: every runtime package provides an element or a linked
    // library, or is the HEALTHCHECK's client.
    for pkg in &packages {
        p.check(
            // curl: the HEALTHCHECK's client; fonts-dejavu-core: textoverlay's font (name labels).
            needed.contains_key(pkg) || linked.contains(pkg) || pkg == "curl" || pkg == "fonts-dejavu-core",
            format!("the runtime stage installs {pkg}, which no template element nor the binary needs"),
        );
    }
    p.check(
        health.iter().all(|h| !h.contains("curl") || packages.contains("curl")),
        "the HEALTHCHECK uses curl, which the runtime stage does not install",
    );
    p.finish("deploy/Dockerfile");
}

// ---------------------------------------------------------------------------
// Live scrape: a gateway that really recorded

/// Label names whose values are bounded sets (enums in the code).
const BOUNDED_LABELS: &[&str] =
    &["kind", "reason", "result", "template", "event", "state", "role", "type", "channel", "status", "le", "quantile"];

/// Metric names the gateway must expose (issue 6 contract), besides those the
/// dashboard and the alerts use.
const CONTRACT_METRICS: &[&str] = &[
    "rtcio_gateway_recording_data_age_seconds",
    "rtcio_gateway_media_keyframe_wait_seconds",
    "rtcio_gateway_webhook_deliveries_total",
    "rtcio_gateway_webhook_attempt_failures_total",
    "rtcio_gateway_webhook_queue_depth",
    "rtcio_gateway_api_requests_total",
];

struct Sample {
    name: String,
    labels: Vec<(String, String)>,
}

fn parse_exposition(body: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            types.insert(it.next().unwrap().to_string(), it.next().unwrap_or("untyped").to_string());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = line[..name_end].to_string();
        let mut labels = Vec::new();
        if line[name_end..].starts_with('{') {
            let chars: Vec<char> = line[name_end + 1..].chars().collect();
            let mut i = 0;
            while i < chars.len() && chars[i] != '}' {
                let start = i;
                while chars[i] != '=' {
                    i += 1;
                }
                let key: String = chars[start..i].iter().collect::<String>().trim_matches([',', ' ']).to_string();
                i += 2; // ="
                let mut value = String::new();
                while chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                        value.push(match chars[i] {
                            'n' => '\n',
                            c => c,
                        });
                    } else {
                        value.push(chars[i]);
                    }
                    i += 1;
                }
                i += 1;
                if i < chars.len() && chars[i] == ',' {
                    i += 1;
                }
                labels.push((key, value));
            }
        }
        samples.push(Sample { name, labels });
    }
    (types, samples)
}

/// Every sample name a family's TYPE makes available to PromQL.
fn exposed_names(types: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (name, ty) in types {
        names.insert(name.clone());
        if ty == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        } else if ty == "summary" {
            for suffix in ["_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_pass_promtool_have_bounded_labels_and_cover_the_dashboard_and_alerts() {
    use rtcio_gateway::media::source::{AudioCodec, MediaSource, SourceConfig, VideoCodec};
    use rtcio_gateway::metrics::Metrics;
    use rtcio_gateway::participant::events::ParticipantEvent;
    use rtcio_gateway::participant::link::LinkConfig;
    use rtcio_gateway::participant::room::{Participant, ParticipantConfig};

    let promtool = promtool(); // before anything is started
    common::init_tracing();
    // Names that would be unbounded label values if they ever became labels.
    const ROOM: &str = "deploy-cardinality-room-7f3a";
    const PEER_NAME: &str = "deploy-cardinality-peer-9c1e";
    const STREAM_ID: &str = "deploy-cardinality-stream-5d2b";
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().to_path_buf();
    let gw = common::start_with(move |c| {
        c.recording.enabled = true;
        c.recording.dir = recordings;
        c.recording.udp_bind = "127.0.0.1".parse().unwrap();
        c.recording.track_wait_ms = 700;
    })
    .await;
    let base = common::url(&gw);

    // A publisher whose VP8 + Opus stream and chat the gateway records.
    let metrics = Metrics::new();
    let config = ParticipantConfig {
        link: LinkConfig {
            server: base.clone(),
            room: ROOM.into(),
            name: PEER_NAME.into(),
            password: None,
            token: None,
        },
        channels: vec!["chat".into()],
        udp_bind: "127.0.0.1".parse().unwrap(),
        ice_servers: vec![],
    };
    let mut publisher = Participant::start(config, metrics.participant.clone()).unwrap();
    let mut ids = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, publisher.next_event()).await {
            Ok(Some(ParticipantEvent::Joined { own_id, .. })) => {
                ids.insert(own_id);
            }
            Ok(Some(ParticipantEvent::PeerConnected(peer))) if peer.name.contains("recorder") => {
                ids.insert(peer.id);
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("the publisher stopped before the recorder connected"),
            Err(_) => panic!("the recorder did not connect within 20 s"),
        }
    }
    let media = MediaSource::start(&SourceConfig {
        video: Some(VideoCodec::Vp8),
        audio: Some(AudioCodec::Opus),
        ..Default::default()
    })
    .unwrap();
    publisher.publish(media.stream(STREAM_ID, "camera", None)).unwrap();
    for i in 0..5 {
        publisher.emit_on("chat", "msg", &[serde_json::json!(format!("hello {i}"))]).unwrap();
    }
    // The gateway logs the chat (the first message after connect may be lost) and records a few seconds.
    let room_dir = dir.path().join(ROOM);
    let chat_log = room_dir.join("chat.jsonl");
    common::wait_until_sync("the chat in the room's chat log", Duration::from_secs(20), || {
        std::fs::read_to_string(&chat_log).is_ok_and(|log| log.lines().filter(|l| l.contains("hello ")).count() >= 4)
    })
    .await;
    common::media::recordings_hold(&room_dir, 1, 2.5).await;
    // The control API (counted by status class once it exists).
    let (api_status, _) = common::http_get(&format!("{base}/api/v1/rooms")).await;
    println!("GET /api/v1/rooms -> {api_status}");
    publisher.shutdown().await;
    drop(media);
    let done = common::media::finished_manifests(&room_dir, 1, Duration::from_secs(15)).await;
    let file_name = done[0].1["file"].as_str().expect("manifest file").to_string();
    let finished = "rtcio_gateway_recordings_total{result=\"finished\"}";
    common::wait_for_value("the finished recording counted", Duration::from_secs(15), || async {
        match common::metric_if_present(&gw, finished).await {
            Ok(n) if n >= 1.0 => Ok(()),
            Ok(n) => Err(format!("{finished} = {n}")),
            Err(_) => Err(format!("{finished} missing")),
        }
    })
    .await;
    let (status, body) = common::http_get(&format!("{base}/metrics")).await;
    gw.shutdown().await.unwrap();
    assert_eq!(status, 200);
    let mut p = Problems::default();

    // 1. promtool's lint of the exposition.
    let out = run(&promtool, &["check", "metrics"], Some(body.as_bytes()));
    p.check(out.status.success() && text(&out).trim().is_empty(), format!("promtool check metrics:\n{}", text(&out)));

    // 2. Bounded labels only; no room, peer, socket, stream or file name.
    let (types, samples) = parse_exposition(&body);
    let mut values: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for sample in &samples {
        for (k, v) in &sample.labels {
            p.check(
                BOUNDED_LABELS.contains(&k.as_str()),
                format!("{}: label {k}=\"{v}\" is not in the bounded allow-list", sample.name),
            );
            p.check(
                v.len() <= 40 && !v.contains('/') && !v.chars().any(char::is_whitespace),
                format!("{}: label value {k}=\"{v}\" looks unbounded", sample.name),
            );
            values.entry((sample.name.clone(), k.clone())).or_default().insert(v.clone());
        }
    }
    for ((name, label), vals) in &values {
        p.check(vals.len() <= 25, format!("{name}: {} values of {label}", vals.len()));
    }
    let stem = Path::new(&file_name).file_stem().unwrap().to_str().unwrap().to_string();
    for secret in [ROOM, PEER_NAME, STREAM_ID, &file_name, &stem].into_iter().chain(ids.iter().map(String::as_str)) {
        p.check(
            !body.contains(secret),
            format!("/metrics contains {secret:?} (a room, peer, socket, stream or file name)"),
        );
    }
    p.check(ids.len() >= 2, format!("expected the publisher's and the recorder's socket ids, got {ids:?}"));

    // 3. Every metric the dashboard and the alerts use, and the contract's.
    let exposed = exposed_names(&types);
    p.check(exposed.len() > 20, format!("only {} metric families exposed", exposed.len()));
    for n in &exposed {
        p.check(n.starts_with("rtcio_gateway_"), format!("{n} lacks the rtcio_gateway_ prefix"));
    }
    let dashboard: Value = serde_json::from_str(&read(&deploy("grafana/dashboards/rtcio-gateway.json"))).unwrap();
    let alerts = yaml(&deploy("prometheus/alerts.yml"));
    let mut used: Vec<(String, String)> = Vec::new();
    for (panel, e) in dashboard_exprs(&dashboard) {
        used.extend(promql_metric_names(&e).into_iter().map(|n| (n, format!("dashboard panel {panel:?}"))));
    }
    for (alert, e) in rule_exprs(&alerts) {
        used.extend(promql_metric_names(&e).into_iter().map(|n| (n, format!("alert {alert}"))));
    }
    used.extend(CONTRACT_METRICS.iter().map(|n| (n.to_string(), "the issue 6 metrics contract".to_string())));
    // `up` is Prometheus' own per-target series.
    let mut missing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, whom) in used {
        if name != "up" && !exposed.contains(&name) {
            missing.entry(name).or_default().insert(whom);
        }
    }
    for (name, whom) in &missing {
        p.0.push(format!(
            "{name} is not exposed by the gateway (used by {})",
            whom.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    println!("exposed metric names ({}):\n{}", exposed.len(), exposed.iter().cloned().collect::<Vec<_>>().join("\n"));
    p.finish("live /metrics");
}
