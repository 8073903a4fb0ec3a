//! Marathon's `/v2/groups` against in-process masters and agents with the recording fake
//! container runtime: nested groups whose app and group dependencies order the deployment,
//! dry runs, conflicts and `force`, updates that remove apps, `scaleBy`, rollbacks, removal
//! of a whole group, Marathon's error bodies; and the smaller endpoints (`POST
//! /v2/tasks/delete`, `DELETE /v2/queue/{app}/delay` through a follower, leader, plugins, pods).

mod support;

use std::sync::Arc;
use std::time::Duration;

use medos::agent::RunningAgent;
use medos::agent::fake::FakeContainers;
use medos::api::client::Client;
use medos::core::AgentStatus;
use reqwest::Method;
use serde_json::{Value, json};
use support::{TestCluster, fast_tuning, wait_for};

struct Fixture {
    cluster: TestCluster,
    _fakes: Vec<Arc<FakeContainers>>,
    _agents: Vec<RunningAgent>,
}

async fn fixture(masters: usize, agents: usize) -> Fixture {
    let cluster = TestCluster::start(masters, fast_tuning()).await;
    let mut fakes = Vec::new();
    let mut running = Vec::new();
    for i in 1..=agents {
        let fake = Arc::new(FakeContainers::default());
        let config = cluster.agent_config(&format!("agent-{i}"));
        running.push(medos::agent::start(config, fake.clone()).await.unwrap());
        fakes.push(fake);
    }
    let master = cluster.any_master();
    wait_for("agents to register", Duration::from_secs(20), || {
        let m = master.clone();
        async move {
            let state = m.state.read().unwrap();
            (state.agents.values().filter(|a| a.status == AgentStatus::Active).count() == agents).then_some(())
        }
    })
    .await;
    Fixture { cluster, _fakes: fakes, _agents: running }
}

/// An answer: status, the `Location` and `Marathon-Deployment-Id` headers, the JSON body.
struct Answer {
    status: u16,
    location: Option<String>,
    deployment_header: Option<String>,
    body: Value,
}

async fn request(client: &Client, method: Method, path: &str, body: Option<Value>) -> Answer {
    let bytes = body.map(|b| reqwest::Body::from(serde_json::to_vec(&b).unwrap()));
    let json = bytes.is_some();
    let resp = client.send(method.clone(), path, bytes, json).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (status, location, deployment_header) =
        (resp.status().as_u16(), header("location"), header("marathon-deployment-id"));
    let bytes = resp.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer { status, location, deployment_header, body }
}

/// A request that must succeed with `status`; returns the body.
async fn ok(client: &Client, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
    let a = request(client, method.clone(), path, body).await;
    assert_eq!(a.status, status, "{method} {path}: {}", a.body);
    a.body
}

fn app(id: &str, instances: u32) -> Value {
    json!({"id": id, "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": instances, "portDefinitions": []})
}

/// Instances running per app id, and whether any deployment is left.
async fn running(client: &Client, ids: &[&str]) -> Option<(Vec<u64>, bool)> {
    let mut counts = Vec::new();
    for id in ids {
        let a = request(client, Method::GET, &format!("/v2/apps{id}"), None).await;
        if a.status != 200 {
            return None;
        }
        counts.push(a.body["app"]["tasksRunning"].as_u64()?);
    }
    let deployments = request(client, Method::GET, "/v2/deployments", None).await.body;
    Some((counts, deployments.as_array().is_some_and(|d| d.is_empty())))
}

/// Waits until every app runs its count and no deployment is left.
async fn wait_running(client: &Client, apps: &[(&str, u64)]) {
    let ids: Vec<&str> = apps.iter().map(|(id, _)| *id).collect();
    let want: Vec<u64> = apps.iter().map(|(_, n)| *n).collect();
    wait_for(&format!("{apps:?} running with no deployment"), Duration::from_secs(40), || async {
        let (counts, idle) = running(client, &ids).await?;
        (idle && counts == want).then_some(())
    })
    .await;
}

fn task_ids(app: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        app["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

async fn no_live_tasks_under(f: &Fixture, prefix: &str) {
    let master = f.cluster.any_master();
    let prefix = prefix.to_string();
    wait_for(&format!("every task under {prefix} to end"), Duration::from_secs(30), || {
        let m = master.clone();
        let prefix = prefix.clone();
        async move {
            let state = m.state.read().unwrap();
            let alive = state
                .tasks
                .values()
                .filter(|t| t.app_id.as_deref().is_some_and(|a| a.starts_with(&prefix)) && !t.state.is_terminal())
                .count();
            (alive == 0).then_some(())
        }
    })
    .await;
}

fn ids_of(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap().to_string()).collect()
}

fn steps(list: &[&[&str]]) -> Value {
    json!(
        list.iter()
            .map(|actions| json!({"actions": actions.iter().map(|a| {
                let (action, app) = a.split_once(' ').unwrap();
                json!({"action": action, "app": app})
            }).collect::<Vec<_>>()}))
            .collect::<Vec<_>>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_deploy_in_dependency_order_update_scale_roll_back_and_go_away() {
    let f = fixture(1, 2).await;
    let client = f.cluster.client(&f.cluster.wait_leader().await).await;

    // web's group depends on the api group, the api app on the db group. ui cannot be placed
    // (no agent is called "nowhere"), so the deployment waits at its step.
    let mut ui = app("ui", 2);
    ui["constraints"] = json!([["hostname", "LIKE", "nowhere"]]);
    let mut api = app("api", 1);
    api["dependencies"] = json!(["../db"]);
    let shop = json!({
        "id": "/shop",
        "groups": [
            {"id": "db", "apps": [app("pg", 1)]},
            {"id": "api", "apps": [api]},
            {"id": "web", "dependencies": ["/shop/api"], "apps": [ui]},
        ]
    });
    let plan = steps(&[
        &["StartApplication /shop/api/api", "StartApplication /shop/db/pg", "StartApplication /shop/web/ui"],
        &["ScaleApplication /shop/db/pg"],
        &["ScaleApplication /shop/api/api"],
        &["ScaleApplication /shop/web/ui"],
    ]);

    // A dry run answers the steps and changes nothing.
    let dry = ok(&client, Method::PUT, "/v2/groups/shop?dryRun=true", Some(shop.clone()), 200).await;
    assert_eq!(dry["steps"], plan);
    let missing = request(&client, Method::GET, "/v2/groups/shop", None).await;
    assert_eq!((missing.status, missing.body), (404, json!({"message": "Group '/shop' does not exist"})));

    let created = request(&client, Method::POST, "/v2/groups", Some(shop.clone())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let deployment_id = created.body["deploymentId"].as_str().unwrap().to_string();
    assert_eq!(created.deployment_header.as_deref(), Some(deployment_id.as_str()));
    assert_eq!(created.location.as_deref(), Some("/v2/groups/shop"));
    assert!(created.body["version"].is_string());

    // The deployment follows the plan: it waits at ui's step with pg and api running, and api
    // was launched only after pg ran.
    let deployment = wait_for("the deployment to wait at the ui step", Duration::from_secs(30), || async {
        let list = request(&client, Method::GET, "/v2/deployments", None).await.body;
        let d = list.as_array()?.iter().find(|d| d["id"] == json!(deployment_id))?.clone();
        (d["currentStep"] == json!(4)).then_some(d)
    })
    .await;
    assert_eq!(deployment["steps"], plan);
    assert_eq!(deployment["totalSteps"], json!(4));
    let pg = ok(&client, Method::GET, "/v2/apps/shop/db/pg", None, 200).await["app"].clone();
    let api = wait_for("api to run", Duration::from_secs(20), || async {
        let a = request(&client, Method::GET, "/v2/apps/shop/api/api", None).await.body["app"].clone();
        (a["tasksRunning"] == json!(1)).then_some(a)
    })
    .await;
    let pg_started = pg["tasks"][0]["startedAt"].as_str().unwrap().to_string();
    let api_staged = api["tasks"][0]["stagedAt"].as_str().unwrap().to_string();
    assert!(pg_started <= api_staged, "api ({api_staged}) was launched after pg ran ({pg_started})");

    // Creating it again conflicts; so does a change to an app the deployment holds, unless forced.
    let again = request(&client, Method::POST, "/v2/groups", Some(shop.clone())).await;
    assert_eq!(
        (again.status, again.body),
        (409, json!({"message": "Group /shop is already created. Use PUT to change this group."}))
    );
    let web = json!({"apps": [app("ui", 2)]});
    let locked = request(&client, Method::PUT, "/v2/groups/shop/web", Some(web.clone())).await;
    assert_eq!(locked.status, 409, "{}", locked.body);
    assert!(locked.body["message"].as_str().unwrap().contains("locked by one or more deployments"));
    assert_eq!(locked.body["deployments"], json!([{"id": deployment_id}]));
    ok(&client, Method::PUT, "/v2/groups/shop/web?force=true", Some(web), 200).await;
    wait_running(&client, &[("/shop/db/pg", 1), ("/shop/api/api", 1), ("/shop/web/ui", 2)]).await;

    // The tree: what the PUT did not name (web's dependencies) stayed.
    let tree = ok(&client, Method::GET, "/v2/groups/shop?embed=group.groups&embed=group.apps.counts", None, 200).await;
    assert_eq!(tree["id"], "/shop");
    assert_eq!(tree["enforceRole"], json!(false));
    assert_eq!(tree["apps"], json!([]), "apps are embedded only with group.apps");
    assert_eq!(ids_of(&tree["groups"]), ["/shop/api", "/shop/db", "/shop/web"]);
    assert_eq!(tree["groups"][2]["dependencies"], json!(["/shop/api"]));
    assert!(tree["groups"][2].get("enforceRole").is_none(), "only top-level groups have enforceRole");
    let tree =
        ok(&client, Method::GET, "/v2/groups/shop?embed=group.groups,group.apps,group.apps.counts", None, 200).await;
    let ui = &tree["groups"][2]["apps"][0];
    assert_eq!((ui["id"].clone(), ui["tasksRunning"].clone()), (json!("/shop/web/ui"), json!(2)));
    assert!(ui.get("tasks").is_none());
    let root = ok(&client, Method::GET, "/marathon/v2/groups", None, 200).await;
    assert_eq!(root["id"], "/");
    assert_eq!(ids_of(&root["groups"]), ["/shop"]);
    assert_eq!(root["groups"][0]["groups"][1]["apps"][0]["id"], "/shop/db/pg");
    assert!(root["groups"][0]["groups"][1]["apps"][0].get("tasksRunning").is_none(), "no counts by default");
    let apps = ok(&client, Method::GET, "/v2/groups/shop/apps", None, 200).await;
    assert_eq!(ids_of(&apps), ["/shop/api/api", "/shop/db/pg", "/shop/web/ui"]);

    // A PUT whose apps lack one removes that app; the others keep their tasks.
    let pg_tasks = task_ids(&ok(&client, Method::GET, "/v2/apps/shop/db/pg", None, 200).await["app"]);
    ok(&client, Method::PUT, "/v2/groups/shop/db", Some(json!({"apps": [app("pg", 1), app("cache", 1)]})), 200).await;
    wait_running(&client, &[("/shop/db/pg", 1), ("/shop/db/cache", 1)]).await;
    ok(&client, Method::PUT, "/v2/groups/shop/db", Some(json!({"apps": [app("pg", 1)]})), 200).await;
    let gone = request(&client, Method::GET, "/v2/apps/shop/db/cache", None).await;
    assert_eq!(gone.status, 404);
    no_live_tasks_under(&f, "/shop/db/cache").await;
    wait_running(&client, &[("/shop/db/pg", 1)]).await;
    assert_eq!(task_ids(&ok(&client, Method::GET, "/v2/apps/shop/db/pg", None, 200).await["app"]), pg_tasks);

    // scaleBy multiplies every app under the group; a rollback restores the group's version.
    let versions = ok(&client, Method::GET, "/v2/groups/shop/versions", None, 200).await;
    let before_scale = versions[0].as_str().unwrap().to_string();
    assert!(versions.as_array().unwrap().len() >= 4, "{versions}");
    ok(&client, Method::PUT, "/v2/groups/shop", Some(json!({"scaleBy": 2})), 200).await;
    wait_running(&client, &[("/shop/db/pg", 2), ("/shop/api/api", 2), ("/shop/web/ui", 4)]).await;
    let old = ok(&client, Method::GET, &format!("/v2/groups/shop/versions/{before_scale}"), None, 200).await;
    assert_eq!(old["groups"][1]["apps"][0]["instances"], json!(1));
    ok(&client, Method::PUT, "/v2/groups/shop", Some(json!({"version": before_scale})), 200).await;
    wait_running(&client, &[("/shop/db/pg", 1), ("/shop/api/api", 1), ("/shop/web/ui", 2)]).await;

    // DELETE removes the group, its subgroups and apps in one deployment; every task ends.
    let removed = request(&client, Method::DELETE, "/v2/groups/shop", None).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(removed.deployment_header.as_deref(), removed.body["deploymentId"].as_str());
    no_live_tasks_under(&f, "/shop/").await;
    let missing = request(&client, Method::GET, "/v2/groups/shop", None).await;
    assert_eq!((missing.status, missing.body), (404, json!({"message": "Group '/shop' does not exist"})));
    let apps = ok(&client, Method::GET, "/v2/apps", None, 200).await;
    assert_eq!(apps["apps"], json!([]));
    f.cluster.shutdown().await;
}

/// Marathon's 422 body with one error.
fn invalid(path: &str, error: &str) -> Value {
    json!({"message": "Object is not valid", "details": [{"path": path, "errors": [error]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_errors_have_marathons_codes_and_bodies() {
    let f = fixture(1, 1).await;
    let client = f.cluster.client(&f.cluster.wait_leader().await).await;

    let bad = json!({"id": "/bad", "apps": [{"id": "a", "cmd": "sleep 1", "cpus": -1}]});
    let a = request(&client, Method::POST, "/v2/groups", Some(bad)).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.body["details"][0]["path"], "/apps(0)/cpus");
    let a = request(&client, Method::POST, "/v2/groups", Some(json!({"id": "/x", "apps": [app("/other/a", 1)]}))).await;
    assert_eq!((a.status, a.body), (422, invalid("/apps(0)/id", "Identifier is not child of '/x'")));
    let mut a1 = app("a", 1);
    a1["dependencies"] = json!(["b"]);
    let mut b1 = app("b", 1);
    b1["dependencies"] = json!(["/cycle"]);
    let a = request(&client, Method::POST, "/v2/groups", Some(json!({"id": "/cycle", "apps": [a1, b1]}))).await;
    assert_eq!((a.status, a.body), (422, invalid("/", "Dependency graph has cyclic dependencies.")));
    let a = request(&client, Method::POST, "/v2/groups", Some(json!({"id": "/v", "version": "x", "apps": []}))).await;
    assert_eq!((a.status, a.body), (422, invalid("/version", "not allowed in conjunction with other properties.")));
    let syntax =
        client.send(Method::POST, "/v2/groups", Some(reqwest::Body::from(b"{\"id\": ".to_vec())), true).await.unwrap();
    assert_eq!(syntax.status().as_u16(), 400);
    let root = ok(&client, Method::GET, "/v2/groups", None, 200).await;
    assert_eq!((root["groups"].clone(), root["apps"].clone()), (json!([]), json!([])), "nothing was created");

    let a =
        request(&client, Method::PUT, "/v2/groups/nope", Some(json!({"version": "2020-01-01T00:00:00.000Z"}))).await;
    assert_eq!(a.status, 422);
    assert_eq!(a.body["message"], "Group /nope not available in version 2020-01-01T00:00:00.000Z");
    let not_found = json!({"message": "Group '/nope' does not exist"});
    for (method, path, body) in [
        (Method::PUT, "/v2/groups/nope", Some(json!({"scaleBy": 2}))),
        (Method::DELETE, "/v2/groups/nope", None),
        (Method::GET, "/v2/groups/nope/versions", None),
        (Method::PATCH, "/v2/groups/nope", Some(json!({"enforceRole": true}))),
    ] {
        let a = request(&client, method.clone(), path, body).await;
        assert_eq!((a.status, &a.body), (404, &not_found), "{method} {path}");
    }
    let a = request(&client, Method::PATCH, "/v2/groups/a/b", Some(json!({"enforceRole": true}))).await;
    assert_eq!((a.status, a.body), (422, invalid("/", "Path needs to be top-level")));

    // An app's id is not free for a group; PATCH sets enforceRole and moves no app.
    ok(&client, Method::POST, "/v2/apps", Some(app("/g/a", 0)), 201).await;
    let a = request(&client, Method::POST, "/v2/groups", Some(json!({"id": "/g/a"}))).await;
    assert_eq!((a.status, a.body), (409, json!({"message": "An app with the path /g/a already exists."})));
    let a = request(&client, Method::PUT, "/v2/groups/g/a", Some(json!({}))).await;
    assert_eq!(a.status, 422, "{}", a.body);
    let error = a.body["details"][0]["errors"][0].as_str().unwrap();
    assert!(error.starts_with("Groups and Applications may not have the same identifier."), "{error}");
    ok(&client, Method::PATCH, "/v2/groups/g", Some(json!({"enforceRole": true})), 200).await;
    let g = ok(&client, Method::GET, "/v2/groups/g", None, 200).await;
    assert_eq!(g["enforceRole"], json!(true));
    assert_eq!(g["apps"][0]["role"], "slave_public", "PATCH changes no app");
    // Changing enforceRole together with apps is refused, as Marathon does.
    let a = request(&client, Method::PUT, "/v2/groups/g", Some(json!({"enforceRole": false, "apps": []}))).await;
    assert_eq!(a.status, 422);
    assert_eq!(a.body["details"][0]["path"], "/enforceRole");

    // Endpoints medos answers without acting.
    let a = request(&client, Method::DELETE, "/v2/leader", None).await;
    assert_eq!(a.status, 501);
    assert!(a.body["message"].as_str().unwrap().contains("Raft"));
    assert_eq!(ok(&client, Method::GET, "/v2/plugins", None, 200).await, json!({"plugins": []}));
    assert_eq!(ok(&client, Method::GET, "/v2/pods", None, 200).await, json!([]));
    assert_eq!(ok(&client, Method::GET, "/v2/pods/::status", None, 200).await, json!([]));
    let a = request(&client, Method::GET, "/v2/pods/web::status", None).await;
    assert_eq!((a.status, a.body), (404, json!({"message": "Pod '/web' does not exist"})));
    assert_eq!(request(&client, Method::POST, "/v2/pods", Some(json!({"id": "/p"}))).await.status, 501);
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_delete_with_scale_and_queue_delay_through_a_follower() {
    let f = fixture(3, 2).await;
    let leader = f.cluster.wait_leader().await;
    let follower = f.cluster.running().into_iter().find(|n| *n != leader).unwrap().to_string();
    let client = f.cluster.client(&leader).await;
    let via_follower = f.cluster.client(&follower).await;

    ok(&client, Method::POST, "/v2/apps", Some(app("/a", 2)), 201).await;
    ok(&client, Method::POST, "/v2/apps", Some(app("/b", 1)), 201).await;
    wait_running(&client, &[("/a", 2), ("/b", 1)]).await;
    let a_tasks = task_ids(&ok(&client, Method::GET, "/v2/apps/a", None, 200).await["app"]);
    let b_tasks = task_ids(&ok(&client, Method::GET, "/v2/apps/b", None, 200).await["app"]);

    // scale and wipe do not go together.
    let ids = json!({"ids": [a_tasks[0], b_tasks[0], "no-such-task"]});
    let a = request(&client, Method::POST, "/v2/tasks/delete?scale=true&wipe=true", Some(ids.clone())).await;
    assert_eq!((a.status, a.body), (400, json!({"message": "You cannot use scale and wipe at the same time."})));

    // With scale: one deployment lowers both apps; unknown ids are ignored.
    let a = request(&via_follower, Method::POST, "/v2/tasks/delete?scale=true", Some(ids)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.deployment_header.as_deref(), a.body["deploymentId"].as_str());
    wait_running(&client, &[("/a", 1), ("/b", 0)]).await;
    let app_a = ok(&client, Method::GET, "/v2/apps/a", None, 200).await["app"].clone();
    assert_eq!(app_a["instances"], json!(1));
    assert_eq!(task_ids(&app_a), vec![a_tasks[1].clone()], "the named task went, the other stayed");
    assert_eq!(ok(&client, Method::GET, "/v2/apps/b", None, 200).await["app"]["instances"], json!(0));

    // Without scale the app replaces the task.
    let killed = ok(&client, Method::POST, "/v2/tasks/delete", Some(json!({"ids": [a_tasks[1]]})), 200).await;
    assert_eq!(ids_of(&killed["tasks"]), vec![a_tasks[1].clone()]);
    wait_for("a replacement for the killed task", Duration::from_secs(30), || async {
        let app = request(&client, Method::GET, "/v2/apps/a", None).await.body["app"].clone();
        let ids = task_ids(&app);
        (app["tasksRunning"] == json!(1) && ids.len() == 1 && ids[0] != a_tasks[1]).then_some(())
    })
    .await;

    // The launch delay of a waiting app is reset through any master; an app that waits for
    // nothing is not in the queue.
    let mut waiting = app("/c", 1);
    waiting["constraints"] = json!([["hostname", "LIKE", "nowhere"]]);
    ok(&client, Method::POST, "/v2/apps", Some(waiting), 201).await;
    wait_for("/c to wait in the queue", Duration::from_secs(20), || async {
        let q = request(&client, Method::GET, "/v2/queue", None).await.body;
        q["queue"].as_array()?.iter().any(|e| e["app"]["id"] == "/c").then_some(())
    })
    .await;
    let a = request(&via_follower, Method::DELETE, "/v2/queue/c/delay", None).await;
    assert_eq!((a.status, a.body), (204, Value::Null));
    let a = request(&via_follower, Method::DELETE, "/marathon/v2/queue/a/delay", None).await;
    assert_eq!((a.status, a.body), (404, json!({"message": "Application /a not found in tasks queue."})));
    f.cluster.shutdown().await;
}
