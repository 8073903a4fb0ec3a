//! Tests of parsing, normalisation and validation against Marathon's documented examples and
//! rules (messages and paths as Marathon reports them).

use serde_json::{Value, json};

use super::*;
use crate::core::marathon::group::parse_group;
use crate::core::tasks::{HealthProtocol, default_grace_ms};

fn root() -> PathId {
    PathId::root()
}

fn pid(s: &str) -> PathId {
    PathId::parse(s, &root()).unwrap()
}

fn ok(v: Value) -> AppDefinition {
    parse_app(&v, &root()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn err(v: Value) -> ValidationError {
    match parse_app(&v, &root()) {
        Ok(app) => panic!("{v} should be refused, got {}", app.to_json()),
        Err(e) => e,
    }
}

fn example(name: &str) -> Value {
    let text = match name {
        "app.json" => include_str!("testdata/app.json"),
        "apps_create.json" => include_str!("testdata/apps_create.json"),
        "group.json" => include_str!("testdata/group.json"),
        "app-check-http-example.json" => include_str!("testdata/app-check-http-example.json"),
        "app_patch.json" => include_str!("testdata/app_patch.json"),
        "apps_patch.json" => include_str!("testdata/apps_patch.json"),
        "app-simple.json" => include_str!("testdata/app-simple.json"),
        "docs-application-basics-1.json" => include_str!("testdata/docs-application-basics-1.json"),
        "docs-application-basics-bridge.json" => include_str!("testdata/docs-application-basics-bridge.json"),
        "docs-health-checks-app.json" => include_str!("testdata/docs-health-checks-app.json"),
        other => panic!("no example {other}"),
    };
    serde_json::from_str(text).unwrap()
}

/// The fields every app has with Marathon's defaults, overridden by `fields`.
fn defaults_with(fields: Value) -> Value {
    let mut base = json!({
        "backoffFactor": 1.15,
        "backoffSeconds": 1,
        "cpus": 1.0,
        "disk": 0.0,
        "executor": "",
        "instances": 1,
        "labels": {},
        "maxLaunchDelaySeconds": 300,
        "mem": 128.0,
        "gpus": 0,
        "networks": [{"mode": "host"}],
        "portDefinitions": [{"port": 0, "name": "default", "protocol": "tcp"}],
        "requirePorts": false,
        "upgradeStrategy": {"maximumOverCapacity": 1.0, "minimumHealthCapacity": 1.0},
        "killSelection": "YOUNGEST_FIRST",
        "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
        "role": "slave_public"
    });
    let (Value::Object(b), Value::Object(f)) = (&mut base, fields) else { unreachable!() };
    for (k, v) in f {
        if v.is_null() {
            b.remove(&k);
        } else {
            b.insert(k, v);
        }
    }
    base
}

/// Parsing, serialising, reading back (the stored form) and serialising again are stable.
fn assert_round_trip(app: &AppDefinition) {
    let stored = serde_json::to_value(app).unwrap();
    let back: AppDefinition = serde_json::from_value(stored.clone()).unwrap_or_else(|e| panic!("{stored}: {e}"));
    assert_eq!(&back, app, "stored form reads back to the same app");
    assert_eq!(serde_json::to_value(&back).unwrap(), stored);
    // Parsing Marathon's own output again gives the same app (a client re-posting a GET).
    let reparsed = parse_app(&stored, &root()).unwrap_or_else(|e| panic!("{stored}: {e}"));
    assert_eq!(reparsed.to_json(), AppDefinition { version: None, version_info: None, ..app.clone() }.to_json());
}

// ---------------------------------------------------------------------------------------------
// Marathon's examples
// ---------------------------------------------------------------------------------------------

#[test]
fn documented_examples_parse_with_marathons_defaults() {
    let cases = [
        ("app-simple.json", json!({"id": "/simple", "instances": 2, "cmd": "sleep 1000", "cpus": 0.1, "mem": 16.0})),
        (
            "docs-application-basics-1.json",
            json!({
                "id": "/basic-1", "cmd": "`./cool-script.sh`", "cpus": 0.1, "mem": 10.0,
                "fetch": [{"uri": "https://example.com/app/cool-script.sh", "extract": true, "executable": true, "cache": false}]
            }),
        ),
        (
            "docs-application-basics-bridge.json",
            json!({
                "id": "/basic-3", "cmd": "python3 -m http.server 8080", "cpus": 0.5, "mem": 32.0,
                "container": {
                    "type": "DOCKER",
                    "docker": {"forcePullImage": false, "image": "python:3", "parameters": [], "privileged": false},
                    "volumes": [],
                    "portMappings": [{"containerPort": 8080, "hostPort": 0, "labels": {}, "protocol": "tcp", "servicePort": 0}]
                },
                "networks": [{"mode": "container/bridge"}],
                "portDefinitions": null
            }),
        ),
        (
            "docs-health-checks-app.json",
            json!({
                "id": "/foo", "instances": 2, "cmd": "sleep 1000", "cpus": 0.1, "mem": 16.0,
                "labels": {"owner": "zeus", "note": "Away from olympus"},
                "taskKillGracePeriodSeconds": 30
            }),
        ),
        (
            "app-check-http-example.json",
            json!({
                "id": "/http-index-test", "cmd": "python3 -m http.server $PORT0",
                "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "http"}],
                "check": {"http": {"portIndex": 0, "path": "/"}, "intervalSeconds": 60, "timeoutSeconds": 20}
            }),
        ),
    ];
    for (name, want) in cases {
        let app = ok(example(name));
        assert_eq!(app.to_json(), defaults_with(want), "{name}");
        assert_round_trip(&app);
    }
}

#[test]
fn apps_create_example_parses_each_app() {
    let apps: Vec<AppDefinition> =
        example("apps_create.json").as_array().unwrap().iter().map(|a| ok(a.clone())).collect();
    assert_eq!(apps[0].id, pid("/test/sleep60"));
    assert_eq!(apps[0].dependencies, vec![pid("/test/sleep120"), pid("/other/namespace/or/app")]);
    assert_eq!((apps[0].cpus, apps[0].mem, apps[0].instances), (0.3, 9.0, 2));
    assert_eq!(apps[1].id, pid("/test/sleep120"));
    assert_eq!(apps[1].to_json()["dependencies"], Value::Null, "empty dependencies are omitted");
    for app in &apps {
        assert_round_trip(app);
    }
}

#[test]
fn the_full_app_example_is_refused_as_marathon_refuses_it() {
    // app.json shows every field at once, including combinations Marathon's deprecated-API
    // validation rejects before anything else.
    let e = err(example("app.json"));
    assert_eq!(e.message, NOT_VALID);
    assert_eq!(e.errors_at("/ipAddress"), vec!["ipAddress/discovery is not allowed for Docker containers"]);
    assert_eq!(e.errors_at("/"), vec!["cannot specify both an IP address and port"]);
    assert_eq!(e.details.len(), 2);

    // Without ipAddress it is refused for cmd and args together, the role and the secrets.
    let mut v = example("app.json");
    v.as_object_mut().unwrap().remove("ipAddress");
    let e = err(v.clone());
    assert_eq!(e.errors_at("/"), vec![CMD_ARGS_OR_CONTAINER]);
    assert_eq!(
        e.errors_at("/acceptedResourceRoles"),
        vec!["acceptedResourceRoles can only contain * and slave_public"]
    );
    assert_eq!(e.errors_at("/secrets"), vec![SECRETS_FEATURE]);
    assert_eq!(
        e.errors_at("/env"),
        vec!["use of secret-references in the environment requires the secrets feature to be enabled"]
    );

    // The rest of it is accepted and normalised like Marathon does.
    let o = v.as_object_mut().unwrap();
    for k in ["args", "secrets", "acceptedResourceRoles"] {
        o.remove(k);
    }
    o["env"].as_object_mut().unwrap().remove("PASSWORD");
    let app = ok(v);
    assert_eq!(
        app.to_json(),
        defaults_with(json!({
            "id": "/foo",
            "instances": 2,
            "cmd": "sleep 1000",
            "cpus": 0.1,
            "mem": 16.0,
            "constraints": [["hostname", "LIKE", "srv2.*"]],
            "container": {
                "type": "DOCKER",
                "docker": {
                    "forcePullImage": false,
                    "image": "mesosphere:marathon/latest",
                    "parameters": [{"key": "name", "value": "kdc"}],
                    "privileged": false
                },
                "volumes": [{"containerPath": "/docker_storage", "hostPath": "/hdd/tools/docker/registry", "mode": "RW"}],
                "portMappings": [{
                    "containerPort": 80, "hostPort": 0, "labels": {"vip": "192.168.0.1:80"}, "name": "http",
                    "protocol": "tcp", "servicePort": 10019
                }]
            },
            "dependencies": ["/prod/group"],
            "env": {"XPS1": "Test", "XPS2": "Rest"},
            "healthChecks": [{
                "gracePeriodSeconds": 300, "ignoreHttp1xx": false, "intervalSeconds": 20, "maxConsecutiveFailures": 3,
                "path": "/", "portIndex": 0, "protocol": "HTTP", "ipProtocol": "IPv4", "timeoutSeconds": 20, "delaySeconds": 15
            }],
            "readinessChecks": [{
                "name": "myReadyCheck", "protocol": "HTTP", "path": "/v1/plan", "portName": "http", "intervalSeconds": 10,
                "timeoutSeconds": 3, "httpStatusCodesForReady": [200], "preserveLastResponse": true
            }],
            "labels": {"owner": "zeus", "note": "Away from olympus"},
            "maxLaunchDelaySeconds": 3600,
            "networks": [{"mode": "container/bridge"}],
            "portDefinitions": null,
            "fetch": [
                {"uri": "https://foo.com/setup.py", "extract": true, "executable": false, "cache": false},
                {"uri": "https://foo.com/archive.zip", "extract": true, "executable": false, "cache": true, "destPath": "newname.zip"}
            ],
            "user": "root",
            "taskKillGracePeriodSeconds": 30,
            "tty": true
        }))
    );
    assert_eq!(app.host_ports(), vec![0]);
    assert_round_trip(&app);
}

#[test]
fn the_group_example_parses_once_apps_have_a_command() {
    // Marathon refuses a group `version` next to other fields (a version means "roll back"),
    // and medos cannot run an image's own entrypoint yet: those are the only objections.
    let e = parse_group(&example("group.json"), &root()).unwrap_err();
    assert_eq!(e.message, NOT_VALID);
    let paths: Vec<&str> = e.details.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/version",
            "/groups(0)/version",
            "/groups(0)/apps(0)",
            "/groups(0)/apps(1)",
            "/groups(0)/groups(0)/version",
            "/groups(0)/groups(1)/version",
            "/groups(0)/groups(1)/apps(0)"
        ]
    );
    for v in &e.details {
        let want = if v.path.ends_with("/version") {
            "not allowed in conjunction with other properties."
        } else {
            MEDOS_NEEDS_COMMAND
        };
        assert_eq!(v.errors, vec![want.to_string()], "{}", v.path);
    }

    let mut v = example("group.json");
    fn fix(g: &mut Value) {
        g.as_object_mut().unwrap().remove("version");
        for app in g["apps"].as_array_mut().unwrap() {
            app["cmd"] = json!("run.sh");
        }
        for sub in g["groups"].as_array_mut().unwrap() {
            fix(sub);
        }
    }
    fix(&mut v);
    let g = parse_group(&v, &root()).unwrap();
    assert_eq!(g.id, root());
    let tools = &g.groups[0];
    assert_eq!(tools.id, pid("/tools"));
    assert_eq!(tools.enforce_role, Some(false));
    let oauth = &tools.apps[0];
    assert_eq!(
        oauth.to_json(),
        defaults_with(json!({
            "id": "/tools/oauth-server",
            "instances": 2,
            "cmd": "run.sh",
            "mem": 1024.0,
            "constraints": [["hostname", "UNIQUE"]],
            "container": {
                "type": "DOCKER",
                "docker": {
                    "forcePullImage": false,
                    "image": "docker-registry/oauth_server:6d7d463cb8b1517002080a81cf23f9cf7b7fc774",
                    "parameters": [],
                    "privileged": false
                },
                "volumes": []
            },
            "healthChecks": [{
                "gracePeriodSeconds": 300, "ignoreHttp1xx": false, "intervalSeconds": 20, "maxConsecutiveFailures": 3,
                "path": "/", "portIndex": 0, "protocol": "HTTP", "ipProtocol": "IPv4", "timeoutSeconds": 20, "delaySeconds": 15
            }],
            "maxLaunchDelaySeconds": 3600,
            "portDefinitions": [{"port": 1980, "protocol": "tcp"}],
            "upgradeStrategy": {"maximumOverCapacity": 0.0, "minimumHealthCapacity": 0.5}
        }))
    );
    let datadog = &tools.apps[1];
    assert!(datadog.container.as_ref().unwrap().docker.as_ref().unwrap().privileged);
    assert_eq!(datadog.container.as_ref().unwrap().volumes.len(), 3);
    let registry = &tools.groups[1].apps[0];
    assert_eq!(registry.id, pid("/tools/docker/registry"));
    assert_eq!(
        registry.networks,
        vec![Network { mode: NetworkMode::ContainerBridge, name: None, labels: BTreeMap::new() }]
    );
    assert!(registry.port_definitions.is_empty());
    let mappings = registry.container.as_ref().unwrap().port_mappings.clone().unwrap();
    assert_eq!((mappings[0].container_port, mappings[0].host_port, mappings[0].service_port), (5000, Some(0), 5000));
    for app in g.transitive_apps() {
        assert!(app.version.is_none() && app.version_info.is_none(), "the proposer sets versions");
        assert_round_trip(app);
    }
}

// ---------------------------------------------------------------------------------------------
// Reading: types, ranges, all errors at once
// ---------------------------------------------------------------------------------------------

#[test]
fn reading_errors_use_marathons_keys_and_paths() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"cmd": "ab"}), "/id", "error.path.missing"),
        (json!({"id": 5, "cmd": "ab"}), "/id", "error.expected.jsstring"),
        (json!({"id": "", "cmd": "ab"}), "/id", "error.minLength"),
        (json!({"id": "/My_App", "cmd": "ab"}), "/id", "error.pattern"),
        (json!({"id": "./app", "cmd": "ab"}), "/id", "error.pattern"),
        (json!({"id": "/a", "cmd": ""}), "/cmd", "error.minLength"),
        (json!({"id": "/a", "cmd": "ab", "cpus": "x"}), "/cpus", "error.expected.jsnumber"),
        (json!({"id": "/a", "cmd": "ab", "cpus": 0.0001}), "/cpus", "error.min"),
        (json!({"id": "/a", "cmd": "ab", "cpus": -1}), "/cpus", "error.min"),
        (json!({"id": "/a", "cmd": "ab", "mem": -128}), "/mem", "error.min"),
        (json!({"id": "/a", "cmd": "ab", "disk": -1}), "/disk", "error.min"),
        (json!({"id": "/a", "cmd": "ab", "gpus": -1}), "/gpus", "error.min"),
        (json!({"id": "/a", "cmd": "ab", "instances": -1}), "/instances", "error.min"),
        (json!({"id": "/a", "cmd": "ab", "instances": 1.5}), "/instances", "error.expected.int"),
        (json!({"id": "/a", "cmd": "ab", "instances": 3_000_000_000u64}), "/instances", "error.expected.int"),
        (json!({"id": "/a", "cmd": "ab", "backoffFactor": 0.5}), "/backoffFactor", "error.min"),
        (json!({"id": "/a", "cmd": "ab", "backoffSeconds": -1}), "/backoffSeconds", "error.min"),
        (
            json!({"id": "/a", "cmd": "ab", "maxLaunchDelaySeconds": "1"}),
            "/maxLaunchDelaySeconds",
            "error.expected.jsnumber",
        ),
        (json!({"id": "/a", "args": "ab"}), "/args", "error.expected.jsarray"),
        (json!({"id": "/a", "args": ["a", 1]}), "/args(1)", "error.expected.jsstring"),
        (json!({"id": "/a", "cmd": "ab", "env": {"A": 1}}), "/env/A", "error.expected.jsstring"),
        (json!({"id": "/a", "cmd": "ab", "env": {"A": {"x": 1}}}), "/env/A/secret", "error.path.missing"),
        (json!({"id": "/a", "cmd": "ab", "labels": {"a": true}}), "/labels/a", "error.expected.jsstring"),
        (json!({"id": "/a", "cmd": "ab", "requirePorts": "yes"}), "/requirePorts", "error.expected.jsboolean"),
        (json!({"id": "/a", "cmd": "ab", "killSelection": "RANDOM"}), "/killSelection", "error.unknown.enum.literal"),
        (
            json!({"id": "/a", "cmd": "ab", "portDefinitions": [{"port": 70000}]}),
            "/portDefinitions(0)/port",
            "error.max",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "portDefinitions": [{"name": "HTTP"}]}),
            "/portDefinitions(0)/name",
            "error.pattern",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "portDefinitions": [{"protocol": "sctp"}]}),
            "/portDefinitions(0)/protocol",
            "error.unknown.enum.literal",
        ),
        (json!({"id": "/a", "cmd": "ab", "ports": [-1]}), "/ports(0)", "error.min"),
        (json!({"id": "/a", "cmd": "ab", "uris": [""]}), "/uris(0)", "error.minLength"),
        (json!({"id": "/a", "cmd": "ab", "fetch": [{}]}), "/fetch(0)/uri", "error.path.missing"),
        (
            json!({"id": "/a", "cmd": "ab", "fetch": [{"uri": "x", "cache": 1}]}),
            "/fetch(0)/cache",
            "error.expected.jsboolean",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "healthChecks": [{"protocol": "FOO"}]}),
            "/healthChecks(0)/protocol",
            "error.unknown.enum.literal",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "healthChecks": [{"intervalSeconds": -1}]}),
            "/healthChecks(0)/intervalSeconds",
            "error.min",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "healthChecks": [{"protocol": "COMMAND", "command": {}}]}),
            "/healthChecks(0)/command/value",
            "error.path.missing",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "upgradeStrategy": {"minimumHealthCapacity": 1.2, "maximumOverCapacity": 0}}),
            "/upgradeStrategy/minimumHealthCapacity",
            "error.max",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "upgradeStrategy": {"minimumHealthCapacity": -0.1, "maximumOverCapacity": 0}}),
            "/upgradeStrategy/minimumHealthCapacity",
            "error.min",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "upgradeStrategy": {"minimumHealthCapacity": 0.5}}),
            "/upgradeStrategy/maximumOverCapacity",
            "error.path.missing",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "unreachableStrategy": {"inactiveAfterSeconds": -1}}),
            "/unreachableStrategy/inactiveAfterSeconds",
            "error.min",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "container": {"type": "RKT"}}),
            "/container/type",
            "error.unknown.enum.literal",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "container": {"docker": {}}}),
            "/container/docker/image",
            "error.path.missing",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "container": {"docker": {"image": ""}}}),
            "/container/docker/image",
            "error.minLength",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "container": {"type": "MESOS", "volumes": [{"containerPath": "/c", "mode": "RW"}]}}),
            "/container/volumes(0)/hostPath",
            "error.path.missing",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "networks": [{"mode": "bridge"}]}),
            "/networks(0)/mode",
            "error.unknown.enum.literal",
        ),
        (json!({"id": "/a", "cmd": "ab", "networks": [{"name": "Bad Name"}]}), "/networks(0)/name", "error.pattern"),
        (json!({"id": "/a", "cmd": "ab", "dependencies": ["/A"]}), "/dependencies(0)", "error.pattern"),
        (json!({"id": "/a", "cmd": "ab", "executor": "a//b"}), "/executor", "error.pattern"),
        (json!({"id": "/a", "cmd": "ab", "version": "yesterday"}), "/version", "error.expected.date.isoformat"),
        (json!({"id": "/a", "cmd": "ab", "role": ""}), "/role", "error.minLength"),
        (
            json!({"id": "/a", "cmd": "ab", "readinessChecks": [{"timeoutSeconds": 0}]}),
            "/readinessChecks(0)/timeoutSeconds",
            "error.min",
        ),
        (
            json!({"id": "/a", "cmd": "ab", "readinessChecks": [{"httpStatusCodesForReady": [42]}]}),
            "/readinessChecks(0)/httpStatusCodesForReady(0)",
            "error.min",
        ),
        (json!({"id": "/a", "cmd": "ab", "secrets": {"s": {}}}), "/secrets/s/source", "error.path.missing"),
        (
            json!({"id": "/a", "cmd": "ab", "constraints": [["hostname", 1]]}),
            "/constraints(0)(1)",
            "error.expected.jsstring",
        ),
        (json!([1, 2]), "/", "error.expected.jsobject"),
    ];
    for (input, path, error) in cases {
        let e = err(input.clone());
        assert_eq!(e.message, INVALID_JSON, "{input}");
        assert_eq!(e.errors_at(path), vec![error], "{input}: {e}");
    }
}

#[test]
fn every_reading_error_is_reported_at_once() {
    let e = err(json!({"id": 1, "cpus": "a", "mem": -1, "healthChecks": [{"protocol": "X", "portIndex": "0"}]}));
    assert_eq!(e.message, INVALID_JSON);
    let paths: Vec<&str> = e.details.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, vec!["/id", "/cpus", "/mem", "/healthChecks(0)/portIndex", "/healthChecks(0)/protocol"]);
    let body = serde_json::to_value(&e).unwrap();
    assert_eq!(body["message"], "Invalid JSON");
    assert_eq!(body["details"][0], json!({"path": "/id", "errors": ["error.expected.jsstring"]}));
}

#[test]
fn nulls_count_as_absent_and_unknown_fields_are_ignored() {
    let app = ok(
        json!({"id": "/a", "cmd": "sleep 1", "cpus": null, "env": null, "someFutureField": {"x": 1}, "tasksRunning": 3}),
    );
    assert_eq!(app.cpus, 1.0);
    assert!(app.env.is_empty());
    assert_eq!(app.to_json(), defaults_with(json!({"id": "/a", "cmd": "sleep 1"})));
}

#[test]
fn enums_are_read_case_insensitively() {
    let app = ok(json!({
        "id": "/a", "cmd": "ab", "killSelection": "oldest_first",
        "container": {"type": "mesos", "docker": {"image": "busybox"}},
        "healthChecks": [{"protocol": "mesos_http", "path": "/h"}],
        "constraints": [["hostname", "unique"]]
    }));
    assert_eq!(app.kill_selection, KillSelection::OldestFirst);
    assert_eq!(app.container.as_ref().unwrap().kind, ContainerKind::Mesos);
    assert_eq!(app.health_checks[0].protocol, HealthCheckProtocol::MesosHttp);
    assert_eq!(app.to_json()["constraints"], json!([["hostname", "UNIQUE"]]));
    assert_eq!(app.to_json()["killSelection"], "OLDEST_FIRST");
}

// ---------------------------------------------------------------------------------------------
// Validation rules: one failing case each, with Marathon's path and message
// ---------------------------------------------------------------------------------------------

#[test]
fn validation_rules_report_path_and_message() {
    let app = |extra: Value| {
        let mut v = json!({"id": "/a", "cmd": "sleep 1"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let docker = |extra: Value| {
        let mut c = json!({"type": "DOCKER", "docker": {"image": "busybox"}});
        for (k, x) in extra.as_object().unwrap() {
            c[k] = x.clone();
        }
        c
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        // command
        (json!({"id": "/a"}), "/", CMD_ARGS_OR_CONTAINER),
        (json!({"id": "/a", "cmd": "sleep 1", "args": ["sleep", "1"]}), "/", CMD_ARGS_OR_CONTAINER),
        (json!({"id": "/a", "container": {"type": "MESOS", "docker": {"image": "busybox"}}}), "/", MEDOS_NEEDS_COMMAND),
        (json!({"id": "/a", "cmd": "x"}), "/", "must not be an empty string"),
        (app(json!({"executor": "/custom/executor"})), "/executor", MEDOS_EXECUTOR),
        // ids
        (json!({"id": "/", "cmd": "ab"}), "/", "must not be root"),
        (json!({"id": "/", "cmd": "ab"}), "/id", "Path must contain at least one path element"),
        (
            json!({"id": "/a/restart", "cmd": "ab"}),
            "/id",
            "must not end with any of the following reserved keywords: restart, tasks, versions, ., ..",
        ),
        (
            app(json!({"dependencies": ["/b/versions"]})),
            "/dependencies(0)",
            "must not end with any of the following reserved keywords: restart, tasks, versions, ., ..",
        ),
        // fetch: medos's fetcher takes http(s) only, into the sandbox
        (
            app(json!({"fetch": [{"uri": "file:///etc/passwd"}]})),
            "/fetch(0)",
            "the file:// scheme is not supported: medos fetches only http and https URIs (files of the agent's host are not copied into sandboxes)",
        ),
        // ports
        (
            app(json!({"portDefinitions": [{"port": 0, "name": "http"}, {"port": 0, "name": "http"}]})),
            "/portDefinitions",
            "Port names must be unique.",
        ),
        (app(json!({"portDefinitions": [{"port": 80}, {"port": 80}]})), "/portDefinitions", "Ports must be unique."),
        (app(json!({"ports": [80, 80]})), "/", "ports must be unique"),
        (
            app(json!({"ports": [80], "portDefinitions": [{"port": 81}]})),
            "/",
            "cannot specify both ports and port definitions",
        ),
        // environment and secrets
        (app(json!({"env": {"": "x"}})), "/env/keys(0)", "must not be empty"),
        (app(json!({"env": {"P": {"secret": "pw"}}})), "/env/P/secret", "references an undefined secret"),
        (app(json!({"secrets": {"pw": {"source": "/db/pw"}}})), "/secrets", SECRETS_FEATURE),
        // health checks
        (app(json!({"healthChecks": [{"protocol": "HTTP", "portIndex": 1}]})), "/healthChecks(0)", HEALTH_PORT_INDEX),
        (
            app(json!({"portDefinitions": [], "healthChecks": [{"protocol": "TCP"}]})),
            "/healthChecks(0)",
            HEALTH_PORT_INDEX,
        ),
        (
            app(json!({"healthChecks": [{"protocol": "COMMAND"}]})),
            "/healthChecks(0)",
            "COMMAND health checks need a command",
        ),
        (
            app(json!({"healthChecks": [{"command": {"value": "true"}}]})),
            "/healthChecks(0)",
            "illegal protocol HTTP specified with command",
        ),
        (
            app(json!({"healthChecks": [{"protocol": "HTTP", "ipProtocol": "IPv6"}]})),
            "/healthChecks(0)",
            "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks",
        ),
        (
            app(json!({"healthChecks": [{"protocol": "MESOS_HTTP"}, {"protocol": "MESOS_TCP"}]})),
            "/",
            "AppDefinition can contain at most one Mesos health check",
        ),
        (
            app(json!({"healthChecks": [{"protocol": "MESOS_TCP", "portIndex": 3}]})),
            "/healthChecks(0)",
            "healthChecks[0].portIndex: the task has 1 port(s); give portIndex below that or a port",
        ),
        (
            app(json!({"healthChecks": [{"protocol": "HTTP", "intervalSeconds": 5, "timeoutSeconds": 10}]})),
            "/healthChecks(0)",
            "healthChecks[0].timeoutSeconds must not exceed intervalSeconds",
        ),
        // strategies
        (
            app(json!({"unreachableStrategy": {"inactiveAfterSeconds": 2, "expungeAfterSeconds": 1}})),
            "/unreachableStrategy/inactiveAfterSeconds",
            "inactiveAfterSeconds (2) must be less or equal to expungeAfterSeconds, which is 1",
        ),
        (
            app(
                json!({"labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"}, "instances": 2, "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}}),
            ),
            "/",
            "Single instance app may only have one instance",
        ),
        (
            app(json!({"labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"}})),
            "/upgradeStrategy/maximumOverCapacity",
            "got 1.0, expected 0.0",
        ),
        (
            app(json!({"labels": {"DCOS_MIGRATION_API_VERSION": "v1"}})),
            "/",
            "DCOS_PACKAGE_FRAMEWORK_NAME and DCOS_MIGRATION_API_PATH must be defined when using DCOS_MIGRATION_API_VERSION",
        ),
        // fetch
        (app(json!({"fetch": [{"uri": "http://example.com/a b"}]})), "/fetch(0)/uri", "URI has invalid syntax."),
        (app(json!({"fetch": [{"uri": "1http://example.com/"}]})), "/fetch(0)/uri", "URI has invalid syntax."),
        (app(json!({"uris": ["http://example.com/%zz"]})), "/uris(0)", "URI has invalid syntax."),
        (
            app(json!({"uris": ["http://a/b"], "fetch": [{"uri": "http://c/d"}]})),
            "/uris",
            "may not be set in conjunction with fetch",
        ),
        // containers
        (app(json!({"container": {"type": "DOCKER"}})), "/container/docker", "not defined"),
        (
            app(json!({"container": docker(json!({"docker": {"image": "b", "pullConfig": {"secret": "s"}}}))})),
            "/container/docker/pullConfig",
            "pullConfig is not supported with Docker containerizer",
        ),
        (
            app(json!({"container": {"type": "MESOS", "docker": {"image": "b", "pullConfig": {"secret": "s"}}}})),
            "/container/docker/pullConfig",
            SECRETS_FEATURE,
        ),
        (
            app(json!({"container": {"type": "MESOS", "docker": {"image": "b", "network": "HOST"}}})),
            "/container/docker/network",
            "must be empty",
        ),
        (
            app(
                json!({"container": {"type": "MESOS", "docker": {"image": "b", "parameters": [{"key": "a", "value": "b"}]}}}),
            ),
            "/container/docker/parameters",
            "must be empty",
        ),
        (
            app(json!({"container": docker(json!({"docker": {"image": "b", "credential": {"principal": "p"}}}))})),
            "/container/docker/credential",
            "must be empty",
        ),
        (
            app(
                json!({"container": docker(json!({"volumes": [{"containerPath": "data", "mode": "RW", "persistent": {"size": 10}}]}))}),
            ),
            "/container/volumes(0)",
            MEDOS_NO_PERSISTENT_VOLUMES,
        ),
        (
            app(
                json!({"container": docker(json!({"volumes": [{"containerPath": "/d", "mode": "RW", "external": {"name": "v", "provider": "dvdi"}}]}))}),
            ),
            "/container/volumes(0)",
            EXTERNAL_VOLUMES_FEATURE,
        ),
        (
            app(json!({"container": docker(json!({"docker": {"image": "b", "network": "NONE"}}))})),
            "/",
            "unsupported docker network type NONE",
        ),
        (
            app(
                json!({"networks": [{"mode": "container/bridge"}], "container": docker(json!({"docker": {"image": "b", "portMappings": [{"containerPort": 1}]}, "portMappings": [{"containerPort": 2}]}))}),
            ),
            "/",
            "cannot specify both portMappings and docker.portMappings",
        ),
        (
            app(
                json!({"container": docker(json!({"docker": {"image": "b", "network": "BRIDGE"}})), "networks": [{"mode": "host"}]}),
            ),
            "/",
            "must not specify both container.docker.network and networks",
        ),
        (
            app(
                json!({"container": docker(json!({})), "ipAddress": {"discovery": {"ports": [{"number": 80, "name": "http"}]}}, "portDefinitions": []}),
            ),
            "/ipAddress",
            "ipAddress/discovery is not allowed for Docker containers",
        ),
        (
            app(json!({"check": {"http": {"portIndex": 0}}, "container": docker(json!({}))})),
            "/",
            "AppDefinition must not use 'checks' if using docker",
        ),
        (
            app(
                json!({"networks": [{"mode": "container/bridge"}], "container": docker(json!({"portMappings": [{"name": "a"}, {"name": "a"}]}))}),
            ),
            "/container/portMappings",
            "Port names must be unique.",
        ),
        (
            app(
                json!({"networks": [{"mode": "container", "name": "one"}], "container": docker(json!({"portMappings": [{"networkNames": ["two"]}]}))}),
            ),
            "/container/portMappings(0)/networkNames(0)",
            "is not one of (one)",
        ),
        (
            app(
                json!({"networks": [{"mode": "container", "name": "a"}, {"mode": "container", "name": "b"}], "container": {"type": "MESOS", "portMappings": [{"hostPort": 0}]}}),
            ),
            "/container/portMappings(0)",
            "networkNames must be a single item list when hostPort is specified and more than 1 container network is defined",
        ),
        (
            app(
                json!({"networks": [{"mode": "container", "name": "a"}, {"mode": "container", "name": "b"}], "container": docker(json!({}))}),
            ),
            "/",
            "may only specify a single container network when using the Docker container engine",
        ),
        // networks
        (
            app(json!({"networks": [{"mode": "host", "name": "x"}]})),
            "/networks",
            "Host networks may not have names or labels",
        ),
        (
            app(json!({"networks": [{"mode": "container/bridge", "name": "x"}]})),
            "/networks",
            "Bridge networks may not have names",
        ),
        (
            app(json!({"networks": [{"mode": "container", "name": "x"}, {"mode": "container", "name": "x"}]})),
            "/networks",
            "Duplicate networks are not allowed",
        ),
        (
            app(json!({"networks": [{"mode": "host"}, {"mode": "container/bridge"}]})),
            "/networks",
            "May specify a single host network, single bridge network, or else 1-to-n container networks",
        ),
        // roles and resources
        (app(json!({"role": "prod"})), "/role", "got prod, expected one of: [slave_public]"),
        (
            app(json!({"acceptedResourceRoles": ["mesos_role"]})),
            "/acceptedResourceRoles",
            "acceptedResourceRoles can only contain * and slave_public",
        ),
        (app(json!({"acceptedResourceRoles": []})), "/acceptedResourceRoles", "must not be empty"),
        (
            app(json!({"acceptedResourceRoles": ["-x"]})),
            "/acceptedResourceRoles(0)",
            "A role name must not start with a '-'.",
        ),
        (app(json!({"gpus": 1})), "/", GPU_FEATURE),
        (
            app(json!({"cpus": 2, "resourceLimits": {"cpus": 1}})),
            "/resourceLimits/cpus",
            "resource limit must be greater than or equal to requested resource (2.0)",
        ),
        (
            app(json!({"resourceLimits": {"mem": "lots"}})),
            "/resourceLimits/mem",
            "'lots' is an invalid resource limit. It must be 'unlimited' or a number",
        ),
        // readiness checks
        (
            app(json!({"readinessChecks": [{}]})),
            "/readinessChecks(0)/portName",
            "No port definition reference for portName http-api",
        ),
        (
            app(json!({"portDefinitions": [{"name": "http-api"}], "readinessChecks": [{"intervalSeconds": 5}]})),
            "/readinessChecks(0)/timeoutSeconds",
            "got 10, expected less than 5",
        ),
        (
            app(json!({"portDefinitions": [{"name": "http-api"}], "readinessChecks": [{}, {"name": "b"}]})),
            "/readinessChecks",
            "got 2, expected 1 or less",
        ),
        // constraints
        (
            app(json!({"constraints": [["hostname"]]})),
            "/constraints(0)",
            "Each constraint must have either 2 or 3 fields",
        ),
        (
            app(json!({"constraints": [["hostname", "FOO"]]})),
            "/constraints(0)",
            "operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS",
        ),
        (app(json!({"constraints": [["", "UNIQUE"]]})), "/constraints(0)", "illegal constraint specification"),
        (
            app(json!({"constraints": [["hostname", "UNIQUE", "x"]]})),
            "/constraints(0)",
            "UNIQUE does not accept a value",
        ),
        (
            app(json!({"constraints": [["rack", "GROUP_BY", "x"]]})),
            "/constraints(0)",
            "GROUP BY must define an integer value or else no value at all",
        ),
        (app(json!({"constraints": [["rack", "MAX_PER"]]})), "/constraints(0)", "MAX_PER requires an integer value"),
        (
            app(json!({"constraints": [["rack", "LIKE"]]})),
            "/constraints(0)",
            "LIKE and UNLIKE require a non-empty, regular expression value",
        ),
        (
            app(json!({"constraints": [["rack", "UNLIKE", "("]]})),
            "/constraints(0)",
            "is not a valid regular expression",
        ),
        (
            app(json!({"constraints": [["rack", "IS", "a b"]]})),
            "/constraints(0)",
            "IS only supports Mesos text and float values (see http://mesos.apache.org/documentation/latest/attributes-resources/)",
        ),
    ];
    for (input, path, error) in cases {
        let e = err(input.clone());
        assert_eq!(e.message, NOT_VALID, "{input}: {e}");
        assert!(e.errors_at(path).contains(&error), "{input}: want {path}: {error}, got {e}");
    }
}

#[test]
fn every_violation_is_reported_at_once() {
    let e = err(json!({
        "id": "/a/tasks", "cmd": "a", "args": ["b"], "gpus": 1,
        "portDefinitions": [{"port": 80}, {"port": 80}],
        "unreachableStrategy": {"inactiveAfterSeconds": 5, "expungeAfterSeconds": 1}
    }));
    assert_eq!(e.message, NOT_VALID);
    let paths: BTreeSet<&str> = e.details.iter().map(|v| v.path.as_str()).collect();
    let want: BTreeSet<&str> = ["/id", "/", "/portDefinitions", "/unreachableStrategy/inactiveAfterSeconds"].into();
    assert_eq!(paths, want, "{e}");
    assert!(e.errors_at("/").contains(&CMD_ARGS_OR_CONTAINER));
    assert!(e.errors_at("/").contains(&GPU_FEATURE));
    assert!(e.errors_at("/").contains(&"must not be an empty string"));
}

#[test]
fn accepted_inputs_marathon_allows() {
    // requirePorts with port 0 (Marathon would pick a service port; medos any free port).
    let a = ok(json!({"id": "/a", "cmd": "ab", "requirePorts": true, "portDefinitions": [{"port": 0}]}));
    assert!(a.require_ports);
    // Zero instances, zero memory.
    assert_eq!(ok(json!({"id": "/a", "cmd": "ab", "instances": 0, "mem": 0})).instances, 0);
    // MAX_PER with a number, CLUSTER without value, LIKE with a regex, IS with text.
    let a = ok(json!({"id": "/a", "cmd": "ab", "constraints": [
        ["rack", "MAX_PER", "2"], ["rack", "CLUSTER"], ["hostname", "LIKE", "a.*"], ["os", "IS", "linux"], ["rack", "GROUP_BY"]
    ]}));
    assert_eq!(a.constraints.len(), 5);
    // A DOCKER container runs like a MESOS one with the same image.
    let a = ok(
        json!({"id": "/a", "cmd": "ab", "container": {"type": "DOCKER", "docker": {"image": "nginx:1", "forcePullImage": true}}}),
    );
    assert_eq!(a.image(), Some("nginx:1"));
    // Command health checks may keep a portIndex (ignored), as in Marathon.
    let a = ok(
        json!({"id": "/a", "cmd": "ab", "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}, "portIndex": 4}]}),
    );
    assert_eq!(a.health_checks[0].port_index, None);
    // Health checks with a fixed port need no port definitions.
    ok(json!({"id": "/a", "cmd": "ab", "portDefinitions": [], "healthChecks": [{"protocol": "HTTP", "port": 8080}]}));
    // acceptedResourceRoles with both roles medos knows.
    ok(json!({"id": "/a", "cmd": "ab", "acceptedResourceRoles": ["*", "slave_public"]}));
    // Apps in a group may use the top-level group's name as role.
    ok(json!({"id": "/dev/a", "cmd": "ab", "role": "dev"}));
}

// ---------------------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------------------

#[test]
fn ids_and_dependencies_resolve_against_the_base() {
    let base = pid("/g/h");
    let app =
        parse_app(&json!({"id": "app", "cmd": "ab", "dependencies": ["../x", "y", "/abs/z", "y"]}), &base).unwrap();
    assert_eq!(app.id, pid("/g/h/app"));
    assert_eq!(app.dependencies, vec![pid("/g/x"), pid("/g/h/y"), pid("/abs/z")]);
    let app = parse_app(&json!({"id": "../other/app", "cmd": "ab"}), &base).unwrap();
    assert_eq!(app.id, pid("/g/other/app"));
    let app = parse_app(&json!({"id": "/abs/app", "cmd": "ab"}), &base).unwrap();
    assert_eq!(app.id, pid("/abs/app"));
}

#[test]
fn deprecated_fields_are_translated() {
    // ports → portDefinitions without names.
    let app = ok(json!({"id": "/a", "cmd": "ab", "ports": [0, 8080]}));
    assert_eq!(
        app.to_json()["portDefinitions"],
        json!([{"port": 0, "protocol": "tcp"}, {"port": 8080, "protocol": "tcp"}])
    );
    // Equal ports and portDefinitions are allowed.
    let app = ok(json!({"id": "/a", "cmd": "ab", "ports": [81], "portDefinitions": [{"port": 81, "name": "x"}]}));
    assert_eq!(app.port_definitions[0].name.as_deref(), Some("x"));
    // uris → fetch; archives are extracted.
    let app = ok(
        json!({"id": "/a", "cmd": "ab", "uris": ["https://x/a.tgz", "https://x/run.sh", "https://x/b.zip?token=1"]}),
    );
    assert_eq!(
        app.to_json()["fetch"],
        json!([
            {"uri": "https://x/a.tgz", "extract": true, "executable": false, "cache": false},
            {"uri": "https://x/run.sh", "extract": false, "executable": false, "cache": false},
            {"uri": "https://x/b.zip?token=1", "extract": true, "executable": false, "cache": false}
        ])
    );
    // docker.network BRIDGE → a container/bridge network; docker.portMappings move up and get hostPort 0.
    let app = ok(json!({"id": "/a", "cmd": "ab", "container": {"type": "DOCKER", "docker": {
        "image": "i", "network": "BRIDGE", "portMappings": [{"containerPort": 80}]
    }}}));
    assert_eq!(app.to_json()["networks"], json!([{"mode": "container/bridge"}]));
    assert_eq!(app.to_json()["container"]["portMappings"][0]["hostPort"], 0);
    assert!(app.to_json()["container"]["docker"].get("network").is_none());
    assert!(app.to_json().get("portDefinitions").is_none());
    assert_eq!(app.host_ports(), vec![0]);
    // docker.network HOST keeps host networking and drops port mappings.
    let app = ok(
        json!({"id": "/a", "cmd": "ab", "container": {"type": "DOCKER", "docker": {"image": "i", "network": "HOST"}}}),
    );
    assert_eq!(app.networks, vec![Network::host()]);
    assert_eq!(app.container.as_ref().unwrap().port_mappings, None);
    // ipAddress → a container network (the default network name when none is given), and
    // discovery ports become port mappings of a Mesos container.
    let app =
        ok(json!({"id": "/a", "cmd": "ab", "ipAddress": {"discovery": {"ports": [{"number": 80, "name": "http"}]}}}));
    assert_eq!(
        app.networks,
        vec![Network { mode: NetworkMode::Container, name: Some("dcos".into()), labels: BTreeMap::new() }]
    );
    let c = app.container.as_ref().unwrap();
    assert_eq!(c.kind, ContainerKind::Mesos);
    assert_eq!(c.port_mappings.as_ref().unwrap()[0].container_port, 80);
    assert_eq!(c.port_mappings.as_ref().unwrap()[0].host_port, None);
    assert_eq!(app.host_ports(), Vec::<u32>::new());
    let app = ok(json!({"id": "/a", "cmd": "ab", "ipAddress": {"networkName": "mesos-bridge"}}));
    assert_eq!(app.networks[0].mode, NetworkMode::ContainerBridge);
    // requirePorts only applies to host networking.
    let app =
        ok(json!({"id": "/a", "cmd": "ab", "requirePorts": true, "networks": [{"mode": "container", "name": "n"}]}));
    assert!(!app.require_ports);
    // Container networking without a container gets a Mesos container with a default mapping.
    assert_eq!(
        app.to_json()["container"],
        json!({"type": "MESOS", "volumes": [], "portMappings": [{"containerPort": 0, "labels": {}, "name": "default", "protocol": "tcp", "servicePort": 0}]})
    );
}

#[test]
fn port_defaults_follow_marathon() {
    assert_eq!(
        ok(json!({"id": "/a", "cmd": "ab"})).to_json()["portDefinitions"],
        json!([{"port": 0, "name": "default", "protocol": "tcp"}])
    );
    assert_eq!(ok(json!({"id": "/a", "cmd": "ab", "portDefinitions": []})).to_json()["portDefinitions"], json!([]));
    assert_eq!(ok(json!({"id": "/a", "cmd": "ab", "ports": []})).to_json()["portDefinitions"], json!([]));
    let app = ok(
        json!({"id": "/a", "cmd": "ab", "portDefinitions": [{"port": 0, "protocol": "udp,tcp", "labels": {"VIP_0": "127.1.2.3:80"}}]}),
    );
    assert_eq!(
        app.to_json()["portDefinitions"],
        json!([{"port": 0, "protocol": "udp,tcp", "labels": {"VIP_0": "127.1.2.3:80"}}])
    );
    // More port definitions than mappings with bridge networking: Marathon adds mappings.
    let app = ok(
        json!({"id": "/a", "cmd": "ab", "ports": [0, 0], "container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGE"}}}),
    );
    assert_eq!(app.container.as_ref().unwrap().port_mappings.as_ref().unwrap().len(), 2);
}

#[test]
fn health_checks_are_normalised_per_protocol() {
    let app = ok(json!({"id": "/a", "cmd": "ab", "portDefinitions": [{"port": 0}], "healthChecks": [
        {"protocol": "HTTP", "path": "/h", "delaySeconds": 99},
        {"protocol": "TCP", "path": "/ignored", "ignoreHttp1xx": true},
        {"protocol": "COMMAND", "command": {"value": "true"}, "path": "/x", "delaySeconds": 5}
    ]}));
    assert_eq!(
        app.to_json()["healthChecks"],
        json!([
            {"gracePeriodSeconds": 300, "ignoreHttp1xx": false, "intervalSeconds": 60, "maxConsecutiveFailures": 3, "path": "/h",
             "portIndex": 0, "protocol": "HTTP", "ipProtocol": "IPv4", "timeoutSeconds": 20, "delaySeconds": 15},
            {"gracePeriodSeconds": 300, "intervalSeconds": 60, "maxConsecutiveFailures": 3, "portIndex": 0, "protocol": "TCP",
             "ipProtocol": "IPv4", "timeoutSeconds": 20, "delaySeconds": 15},
            {"gracePeriodSeconds": 300, "command": {"value": "true"}, "intervalSeconds": 60, "maxConsecutiveFailures": 3,
             "protocol": "COMMAND", "ipProtocol": "IPv4", "timeoutSeconds": 20, "delaySeconds": 5}
        ])
    );
    // Without port definitions as given, Marathon leaves portIndex unset (one default port).
    let app =
        ok(json!({"id": "/a", "cmd": "ab", "healthChecks": [{"protocol": "MESOS_HTTP"}, {"protocol": "MESOS_HTTP"}]}));
    assert_eq!(app.health_checks.len(), 1, "identical checks are one (Marathon keeps a set)");
    assert_eq!(app.health_checks[0].port_index, None);
}

#[test]
fn task_health_checks_run_on_the_agent() {
    let app = ok(json!({"id": "/a", "cmd": "ab", "portDefinitions": [{"port": 0}, {"port": 0}], "healthChecks": [
        {"protocol": "HTTPS", "path": "/h", "portIndex": 1, "gracePeriodSeconds": 10, "intervalSeconds": 5, "timeoutSeconds": 2, "maxConsecutiveFailures": 7},
        {"protocol": "TCP", "port": 9000},
        {"protocol": "COMMAND", "command": {"value": "curl -f localhost:$PORT0"}}
    ]}));
    let checks = app.task_health_checks();
    assert_eq!(checks[0].protocol, HealthProtocol::MesosHttps);
    assert_eq!((checks[0].path.as_deref(), checks[0].port_index, checks[0].port), (Some("/h"), Some(1), None));
    assert_eq!(
        (
            checks[0].grace_period_seconds,
            checks[0].interval_seconds,
            checks[0].timeout_seconds,
            checks[0].max_consecutive_failures
        ),
        (10, 5, 2, 7)
    );
    assert_eq!(checks[0].delay_seconds, 15);
    assert_eq!(checks[1].protocol, HealthProtocol::MesosTcp);
    assert_eq!((checks[1].port, checks[1].path.as_deref()), (Some(9000), None));
    assert_eq!(checks[2].protocol, HealthProtocol::Command);
    assert_eq!(checks[2].command.as_ref().unwrap().value, "curl -f localhost:$PORT0");
    for (i, c) in checks.iter().enumerate() {
        c.validate(2, i).unwrap();
    }
}

#[test]
fn other_defaults_and_translations() {
    let app = ok(
        json!({"id": "/a", "cmd": "ab", "unreachableStrategy": "disabled", "readinessChecks": [{"portName": "default"}]}),
    );
    assert_eq!(app.unreachable_strategy, UnreachableStrategy::Disabled);
    assert_eq!(app.to_json()["unreachableStrategy"], "disabled");
    assert_eq!(
        app.to_json()["readinessChecks"],
        json!([{"name": "readinessCheck", "protocol": "HTTP", "path": "/", "portName": "default", "intervalSeconds": 30,
                "timeoutSeconds": 10, "httpStatusCodesForReady": [200], "preserveLastResponse": false}])
    );
    let app = ok(json!({"id": "/a", "cmd": "ab", "unreachableStrategy": {"expungeAfterSeconds": 60}}));
    assert_eq!(
        app.unreachable_strategy,
        UnreachableStrategy::Enabled { inactive_after_seconds: 0, expunge_after_seconds: 60 }
    );
    let app = ok(json!({"id": "/a", "cmd": "ab", "constraints": [["hostname", "UNIQUE"], ["hostname", "UNIQUE"]]}));
    assert_eq!(app.constraints.len(), 1);
    assert_eq!(app.kill_grace_ms(), default_grace_ms());
    let app = ok(json!({"id": "/a", "cmd": "ab", "taskKillGracePeriodSeconds": 30}));
    assert_eq!(app.kill_grace_ms(), 30_000);
    let app = ok(json!({"id": "/a", "cmd": "ab", "version": "2015-09-28T19:47:37.681Z",
                        "versionInfo": {"lastScalingAt": "2015-09-28T19:47:37.681Z", "lastConfigChangeAt": "2015-09-28T19:47:37.681Z"}}));
    assert!(app.version.is_none() && app.version_info.is_none(), "a new app's version is the proposer's");
    assert_eq!(app.image(), None);
}

// ---------------------------------------------------------------------------------------------
// Round trip of what medos keeps without acting on it
// ---------------------------------------------------------------------------------------------

#[test]
fn kept_but_unused_fields_round_trip() {
    let input = json!({
        "id": "/kept",
        "cmd": "sleep 100",
        "user": "nobody",
        "fetch": [{"uri": "https://x/y.tar.gz", "extract": false, "executable": true, "cache": true, "destPath": "z"}],
        "readinessChecks": [{"name": "r", "protocol": "HTTPS", "path": "/ready", "portName": "web", "intervalSeconds": 7,
                             "timeoutSeconds": 3, "httpStatusCodesForReady": [200, 204], "preserveLastResponse": true}],
        "portDefinitions": [{"port": 0, "name": "web"}],
        "check": {"tcp": {"portIndex": 0}, "intervalSeconds": 10},
        "residency": {"relaunchEscalationTimeoutSeconds": 10, "taskLostBehavior": "WAIT_FOREVER"},
        "executorResources": {"cpus": 0.2, "mem": 64, "disk": 20},
        "resourceLimits": {"cpus": "unlimited", "mem": 256},
        "tty": false,
        "acceptedResourceRoles": ["*"],
        "container": {
            "type": "MESOS",
            "docker": {"image": "busybox", "forcePullImage": true},
            "volumes": [{"containerPath": "/data", "hostPath": "/srv/data", "mode": "RO"}],
            "linuxInfo": {"seccomp": {"unconfined": true}}
        },
        "labels": {"HAPROXY_GROUP": "external"},
        "env": {"A": "1"},
        "backoffSeconds": 3,
        "backoffFactor": 2,
        "maxLaunchDelaySeconds": 60,
        "killSelection": "OLDEST_FIRST",
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.2},
        "unreachableStrategy": {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 600},
        "taskKillGracePeriodSeconds": 5,
        "constraints": [["rack", "GROUP_BY", "3"]],
        "dependencies": ["/db"]
    });
    let app = ok(input.clone());
    let out = app.to_json();
    for key in [
        "user",
        "readinessChecks",
        "check",
        "residency",
        "resourceLimits",
        "tty",
        "acceptedResourceRoles",
        "labels",
        "env",
        "constraints",
        "dependencies",
        "taskKillGracePeriodSeconds",
        "killSelection",
        "unreachableStrategy",
        "upgradeStrategy",
    ] {
        assert_eq!(out[key], input[key], "{key}");
    }
    assert_eq!(out["fetch"], input["fetch"]);
    assert_eq!(out["container"]["volumes"], input["container"]["volumes"]);
    assert_eq!(out["container"]["linuxInfo"], input["container"]["linuxInfo"]);
    assert_eq!(out["container"]["docker"]["forcePullImage"], true);
    assert_eq!(out["executorResources"], json!({"cpus": 0.2, "mem": 64.0, "disk": 20.0}));
    assert_round_trip(&app);
}

#[test]
fn stored_form_keeps_versions() {
    let mut app = ok(json!({"id": "/a", "cmd": "ab"}));
    app.version = Some("2021-01-01T00:00:00.000Z".into());
    app.version_info = Some(VersionInfo {
        last_scaling_at: "2021-01-01T00:00:00.000Z".into(),
        last_config_change_at: "2020-12-31T00:00:00.000Z".into(),
    });
    let stored = serde_json::to_value(&app).unwrap();
    assert_eq!(stored["version"], "2021-01-01T00:00:00.000Z");
    assert_eq!(stored["versionInfo"]["lastConfigChangeAt"], "2020-12-31T00:00:00.000Z");
    let back: AppDefinition = serde_json::from_value(stored).unwrap();
    assert_eq!(back, app);
    assert!(serde_json::from_value::<AppDefinition>(json!({"id": "/a", "cpus": "x"})).is_err());
}

// ---------------------------------------------------------------------------------------------
// Updates
// ---------------------------------------------------------------------------------------------

fn current() -> AppDefinition {
    let mut app = ok(json!({
        "id": "/foo", "cmd": "sleep 1000", "instances": 1, "env": {"A": "1", "B": "2"},
        "labels": {"x": "y"}, "portDefinitions": [{"port": 0, "name": "http"}], "role": "slave_public"
    }));
    app.version = Some("2021-01-01T00:00:00.000Z".into());
    app.version_info = Some(VersionInfo {
        last_scaling_at: "2021-01-01T00:00:00.000Z".into(),
        last_config_change_at: "2021-01-01T00:00:00.000Z".into(),
    });
    app
}

#[test]
fn patch_merges_given_fields_whole() {
    let cur = current();
    // Marathon's app_patch.json: a scale.
    let scaled = patch_app(&cur, &example("app_patch.json")).unwrap();
    assert_eq!(scaled.instances, 2);
    assert!(!cur.needs_restart(&scaled));
    assert!(cur.is_only_scale_change(&scaled));
    assert_eq!(scaled.version, cur.version, "the proposer sets the new version");
    assert_eq!(scaled.version_info, cur.version_info);

    // Objects are replaced, not merged; absent and null fields are kept.
    let p = patch_app(&cur, &json!({"env": {"C": "3"}, "labels": null, "id": "/ignored", "cpus": 0.5})).unwrap();
    assert_eq!(p.id, cur.id);
    assert_eq!(p.env.len(), 1);
    assert_eq!(p.labels, cur.labels);
    assert_eq!(p.cpus, 0.5);
    assert_eq!(p.cmd, cur.cmd);
    assert!(cur.needs_restart(&p));

    // Deprecated fields replace their canonical twins.
    let p = patch_app(&cur, &json!({"ports": [8080]})).unwrap();
    assert_eq!(p.port_definitions, vec![PortDefinition::new(8080)]);
    let p = patch_app(&cur, &json!({"container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGE"}}}))
        .unwrap();
    assert_eq!(p.networks[0].mode, NetworkMode::ContainerBridge);
    assert!(p.port_definitions.is_empty());

    // The merged app is validated as a whole (Marathon keeps cmd when args are added).
    let e = patch_app(&cur, &json!({"args": ["sleep", "1"]})).unwrap_err();
    assert_eq!(e.errors_at("/"), vec![CMD_ARGS_OR_CONTAINER]);
    // Reading errors name the patch's fields.
    let e = patch_app(&cur, &json!({"cpus": "many"})).unwrap_err();
    assert_eq!((e.message.as_str(), e.errors_at("/cpus")), (INVALID_JSON, vec!["error.expected.jsnumber"]));
    // The app's own role stays valid.
    let mut in_group = ok(json!({"id": "/dev/a", "cmd": "ab", "role": "dev"}));
    in_group.role = "legacy".into();
    assert_eq!(patch_app(&in_group, &json!({"instances": 3})).unwrap().role, "legacy");
}

#[test]
fn patches_of_several_apps_apply_each() {
    let apps = example("apps_patch.json");
    let first = &apps[0];
    let cur = ok(json!({"id": "/test/sleep60", "cmd": "sleep 60", "cpus": 1}));
    let patched = patch_app(&cur, first).unwrap();
    assert_eq!(patched.cpus, 0.3);
    assert!(cur.needs_restart(&patched));
}

#[test]
fn a_version_in_an_update_is_a_rollback() {
    assert_eq!(update_version(&json!({"instances": 2})).unwrap(), None);
    assert_eq!(
        update_version(&json!({"id": "/a", "version": "2021-01-01T00:00:00.000Z"})).unwrap(),
        Some("2021-01-01T00:00:00.000Z".to_string())
    );
    let e = update_version(&json!({"version": "2021-01-01T00:00:00.000Z", "cmd": "x"})).unwrap_err();
    assert_eq!(e.errors_at("/"), vec!["The 'version' field may only be combined with the 'id' field."]);
    let e = update_version(&json!({"version": "soon"})).unwrap_err();
    assert_eq!(e.errors_at("/version"), vec!["error.expected.date.isoformat"]);
}

#[test]
fn replace_is_a_whole_new_definition() {
    let app = replace_app(&pid("/foo"), &json!({"id": "/other", "cmd": "sleep 5"}), &RoleContext::default()).unwrap();
    assert_eq!(app.id, pid("/foo"));
    assert_eq!(app.instances, 1);
    assert!(app.env.is_empty(), "nothing is kept from before");
    let e = replace_app(&pid("/foo"), &json!({"cpus": 1}), &RoleContext::default()).unwrap_err();
    assert_eq!(e.errors_at("/"), vec![CMD_ARGS_OR_CONTAINER]);
}

#[test]
fn needs_restart_is_marathons_is_upgrade() {
    let a = ok(json!({"id": "/a", "cmd": "ab", "constraints": [["a", "UNIQUE"], ["b", "CLUSTER", "x"]]}));
    let scale = AppDefinition { instances: 5, version: Some("2021-01-01T00:00:00.000Z".into()), ..a.clone() };
    assert!(!a.needs_restart(&scale));
    let reordered = AppDefinition { constraints: a.constraints.iter().rev().cloned().collect(), ..a.clone() };
    assert!(!a.needs_restart(&reordered));
    for changed in [
        AppDefinition { cmd: Some("other".into()), ..a.clone() },
        AppDefinition { mem: 1.0, ..a.clone() },
        AppDefinition { labels: [("k".to_string(), "v".to_string())].into(), ..a.clone() },
        AppDefinition {
            upgrade_strategy: UpgradeStrategy { minimum_health_capacity: 0.5, maximum_over_capacity: 1.0 },
            ..a.clone()
        },
        AppDefinition { kill_selection: KillSelection::OldestFirst, ..a.clone() },
        AppDefinition { role: "x".into(), ..a.clone() },
    ] {
        assert!(a.needs_restart(&changed), "{}", changed.to_json());
    }
    let other = AppDefinition { id: pid("/b"), cmd: Some("other".into()), ..a.clone() };
    assert!(!a.needs_restart(&other), "different apps are not upgrades of each other");
}

#[test]
fn uri_syntax_follows_java() {
    for good in [
        "http://example.com/a",
        "https://x/y.tgz?x=1#f",
        "file:///tmp/x",
        "relative/path",
        "hdfs://nn:8020/p",
        "http://[::1]:80/",
        "http://e.com/%20",
    ] {
        assert!(uri_is_valid(good), "{good}");
    }
    for bad in [
        "http://e.com/a b",
        "http://e.com/<x>",
        "1abc:x",
        "http:",
        ":nope",
        "a#b#c",
        "http://e.com/%g0",
        "http://e.com/a|b",
    ] {
        assert!(!uri_is_valid(bad), "{bad}");
    }
    assert!(is_extract("http://x/a.tar.gz"));
    assert!(!is_extract("http://x/a.tar.gz.sig"));
    assert!(!is_extract("http://x.zip"), "the host is not the path");
}

#[test]
fn role_settings_follow_marathon() {
    let none = RoleContext::default();
    assert_eq!(role_settings(&pid("/a"), &none), ("slave_public".into(), vec!["slave_public".into()]));
    assert_eq!(
        role_settings(&pid("/dev/a"), &none),
        ("slave_public".into(), vec!["slave_public".into(), "dev".into()])
    );
    let enforced = RoleContext { enforce_role: true, existing_role: Some("old".into()) };
    assert_eq!(role_settings(&pid("/dev/x/a"), &enforced), ("dev".into(), vec!["dev".into(), "old".into()]));
    let app = parse_app_with(&json!({"id": "/dev/a", "cmd": "ab"}), &root(), &enforced).unwrap();
    assert_eq!(app.role, "dev");
    let e = parse_app_with(
        &json!({"id": "/dev/a", "cmd": "ab", "acceptedResourceRoles": ["slave_public"]}),
        &root(),
        &enforced,
    )
    .unwrap_err();
    assert_eq!(e.errors_at("/acceptedResourceRoles"), vec!["acceptedResourceRoles can only contain * and dev"]);
}
