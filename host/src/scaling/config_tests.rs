use super::*;

fn parse(text: &str) -> ScalingConfig {
    ScalingConfig::parse(text).unwrap()
}

fn secs_of(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[test]
fn defaults_are_guvs() {
    let config = parse("my: {}\n");
    let role = config.role("my").unwrap();
    assert_eq!(secs_of(role.processing), 10.0);
    assert_eq!(secs_of(role.stddev), 5.0);
    assert_eq!(secs_of(role.deadline), 60.0);
    assert_eq!(role.percentile, 99.0);
    assert_eq!(role.concurrency, 1);
    assert_eq!((role.minimum, role.maximum), (1, 5));
    assert_eq!(secs_of(role.boot), 30.0);
    assert_eq!(role.queue, "my");
    assert!(
        (secs_of(role.target) - 48.37).abs() < 0.005,
        "{:?}",
        role.target
    );
    assert_eq!(config.poll_interval, Duration::from_secs(30));
    assert_eq!(config.history, Duration::from_secs(120));
    assert_eq!(config.history_samples(), 4);
    assert!(config.notes.is_empty());
}

#[test]
fn star_defaults_are_copied_and_overridden() {
    let config = parse(
        "'*': {min: 3, max: 40, p: 2, pollinterval: 5, history: 60}\n\
         a: {}\n\
         b: {max: 7, d: 30, q: b.IN, concurrency: 4}\n",
    );
    assert_eq!(config.roles.len(), 2);
    let a = config.role("a").unwrap();
    assert_eq!((a.minimum, a.maximum), (3, 40));
    assert_eq!(secs_of(a.processing), 2.0);
    assert_eq!(
        secs_of(a.stddev),
        1.0,
        "stddev defaults to half the inherited processing"
    );
    let b = config.role("b").unwrap();
    assert_eq!((b.minimum, b.maximum, b.concurrency), (3, 7, 4));
    assert_eq!(secs_of(b.deadline), 30.0);
    assert_eq!(b.queue, "b.IN");
    assert_eq!(config.poll_interval, Duration::from_secs(5));
    assert_eq!(config.history_samples(), 12);
    assert_eq!(config.watch_interval, Duration::from_millis(250));
    assert!(config.role("*").is_none());
}

#[test]
fn the_watch_interval_is_ours_and_may_be_zero() {
    assert_eq!(
        parse("'*': {watchinterval: 0.05}\na: {}").watch_interval,
        Duration::from_millis(50)
    );
    assert_eq!(
        parse("'*': {watchinterval: 0}\na: {}").watch_interval,
        Duration::ZERO
    );
    match ScalingConfig::parse("'*': {watchinterval: -1}") {
        Err(err) => assert_eq!(
            err.to_string(),
            "role '*': key 'watchinterval' must be a number of seconds, 0 or more"
        ),
        Ok(config) => panic!("parsed as {config:?}"),
    }
}

#[test]
fn guvs_imgflo_example() {
    let config = parse(
        "'*':\n  boot: 20\n  app: imgflo\n  min: 2\n  max: 10\n\
         processing: { d: 6.0, p: 1.000, queue: 'imgflo_worker.IN' }\n",
    );
    let role = config.role("processing").unwrap();
    assert_eq!(secs_of(role.deadline), 6.0);
    assert_eq!(secs_of(role.processing), 1.0);
    assert_eq!(secs_of(role.boot), 20.0);
    assert_eq!(role.queue, "imgflo_worker.IN");
    assert_eq!((role.minimum, role.maximum), (2, 10));
    assert_eq!(
        config.notes,
        vec![ConfigNote::Unused {
            role: "*".into(),
            key: "app".into()
        }]
    );
}

#[test]
fn guvs_grid_apis_example() {
    let config = parse(
        "'*': { boot: 40, app: the-grid-apis }\n\
         solve: {d: 30.0, p: 5.0}\n\
         gssmeasure: { deadline: 30.0, p: 5.0 }\n\
         measure: { d: 60.0, processing: 15.0 }\n\
         share: {}\n",
    );
    let names: Vec<_> = config.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["solve", "gssmeasure", "measure", "share"]);
    let share = config.role("share").unwrap();
    assert_eq!(secs_of(share.deadline), 60.0);
    assert_eq!(secs_of(share.processing), 10.0);
    assert_eq!(secs_of(config.role("measure").unwrap().processing), 15.0);
}

#[test]
fn json_reads_too() {
    let config = parse(r#"{"*": {"max": 8}, "render": {"processing": 2, "deadline": 20}}"#);
    let role = config.role("render").unwrap();
    assert_eq!(role.maximum, 8);
    assert_eq!(secs_of(role.deadline), 20.0);
}

#[test]
fn heroku_and_statuspage_keys_are_reported_unused() {
    let config = parse(
        "'*': {apikey: k, broker: 'amqp://x', statuspage: s}\n\
         a: {app: x, dynosize: standard-2x, worker: web, w: other, metric: m}\n",
    );
    let keys: Vec<String> = config.notes.iter().map(ToString::to_string).collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    assert!(keys[0].contains("role '*': key 'apikey'"), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains("role 'a': key 'worker'")));
    assert!(keys.iter().any(|k| k.contains("role 'a': key 'dynosize'")));
}

#[test]
fn only_comments_is_valid_and_empty_is_not() {
    assert!(parse("# my comment").roles.is_empty());
    assert!(matches!(ScalingConfig::parse(""), Err(ConfigError::Empty)));
    assert!(matches!(
        ScalingConfig::parse("  \n"),
        Err(ConfigError::Empty)
    ));
}

#[test]
fn unknown_keys_name_role_and_key() {
    let err = ScalingConfig::parse("a: {processing: 1, speed: 3}").unwrap_err();
    assert_eq!(err.to_string(), "role 'a': unknown key 'speed'");
    let err = ScalingConfig::parse("'*': {colour: red}\na: {}").unwrap_err();
    assert_eq!(err.to_string(), "role '*': unknown key 'colour'");
}

#[test]
fn missing_space_after_colon_is_an_unknown_key() {
    // js-yaml (and YAML 1.2) read `p:60` as a key with no value; guv then silently used
    // processing = 10. We reject it.
    let err = ScalingConfig::parse("'*': {min: 0, max: 4}\nmy: {p:60, deadline: 240}").unwrap_err();
    assert_eq!(err.to_string(), "role 'my': unknown key 'p:60'");
}

#[test]
fn bad_values_name_role_and_key() {
    let cases = [
        (
            "a: {p: fast}",
            "role 'a': key 'processing' must be a number of seconds above 0",
        ),
        (
            "a: {deadline: 0}",
            "role 'a': key 'deadline' must be a number of seconds above 0",
        ),
        (
            "a: {percentile: 100}",
            "role 'a': key 'percentile' must be a percentage above 0 and below 100",
        ),
        (
            "a: {concurrency: 0}",
            "role 'a': key 'concurrency' must be a whole number, 1 or more",
        ),
        (
            "a: {min: -1}",
            "role 'a': key 'minimum' must be a whole number, 0 or more",
        ),
        (
            "a: {max: 2.5}",
            "role 'a': key 'maximum' must be a whole number, 1 or more",
        ),
        (
            "a: {boot: -3}",
            "role 'a': key 'boot' must be a number of seconds, 0 or more",
        ),
        ("a: {q: [x]}", "role 'a': key 'queue' must be a string"),
        (
            "'*': {history: no}\na: {}",
            "role '*': key 'history' must be a number of seconds above 0",
        ),
        (
            "a: {min: 6}",
            "role 'a': key 'minimum' (6) is above 'maximum' (5)",
        ),
        (
            "a: 3",
            "role 'a': settings must be a mapping of keys to values",
        ),
        (
            "- a\n- b",
            "the top level must map role names to role settings",
        ),
    ];
    for (text, message) in cases {
        match ScalingConfig::parse(text) {
            Err(err) => assert_eq!(err.to_string(), message, "for {text}"),
            Ok(config) => panic!("{text} parsed as {config:?}"),
        }
    }
    assert!(matches!(
        ScalingConfig::parse("a: {p: [1"),
        Err(ConfigError::Syntax(_))
    ));
}

#[test]
fn unrealistic_deadline_is_kept_but_reported() {
    // guv's 'unrealistic-deadline' case: valid for scaling, rejected by guv-validate.
    let config =
        parse("'*': {min: 0, max: 4}\nfailing: { processing: 25, stddev: 12, deadline: 50}");
    let role = config.role("failing").unwrap();
    assert!((secs_of(role.target) - 25.01).abs() < 1e-9);
    let err = config.check().unwrap_err();
    assert!(
        err.to_string().contains("is lower than processing time 25"),
        "{err}"
    );
    assert!(err.to_string().contains("role 'failing'"));
    assert!(parse("a: {}").check().is_ok());
}

#[test]
fn explicit_target_wins() {
    let role = parse("a: {target: 30}").roles[0].clone();
    assert_eq!(secs_of(role.target), 30.0);
}

#[test]
fn issue_94_target() {
    let role = parse("a: {p: 496, stddev: 1404, d: 1200, percentile: 68, concurrency: 4, max: 2}")
        .roles[0]
        .clone();
    assert!(
        (secs_of(role.target) - 543.3).abs() < 0.1,
        "{:?}",
        role.target
    );
}

#[test]
fn timing_keys_on_a_role_are_unused() {
    let config = parse("a: {pollinterval: 1}");
    assert_eq!(config.poll_interval, Duration::from_secs(30));
    assert_eq!(
        config.notes,
        vec![ConfigNote::Unused {
            role: "a".into(),
            key: "pollinterval".into()
        }]
    );
}

#[test]
fn actuators_for_external_workers() {
    let config = parse(
        "'*': {command: 'scale.sh {role} {count}'}\n\
         a: {}\n\
         b: {http: 'http://127.0.0.1:8080/scale'}\n\
         s: {http: 'https://scaler.example/scale'}\n\
         c: {q: jobs}\n",
    );
    let actuator = |name: &str| config.role(name).map(|r| r.actuator.clone());
    assert_eq!(
        actuator("a"),
        Some(ActuatorConfig::Command("scale.sh {role} {count}".into()))
    );
    assert!(
        matches!(actuator("b"), Some(ActuatorConfig::Http(url)) if url.path() == "/scale"),
        "the role's own key wins over '*'"
    );
    assert!(
        matches!(actuator("s"), Some(ActuatorConfig::Http(url)) if url.scheme() == "https"),
        "https endpoints are accepted"
    );
    assert!(matches!(actuator("c"), Some(ActuatorConfig::Command(_))));
    assert_eq!(
        parse("a: {}").role("a").map(|r| r.actuator.clone()),
        Some(ActuatorConfig::Pool)
    );
    for (text, message) in [
        (
            "a: {command: x, http: 'http://h/'}",
            "role 'a': keys 'http' and 'command' exclude each other",
        ),
        (
            "a: {http: 'ftp://h/'}",
            "role 'a': key 'http' must be an http:// or https:// URL",
        ),
        (
            "a: {http: 'not a url'}",
            "role 'a': key 'http' must be an http:// or https:// URL",
        ),
        (
            "a: {command: ' '}",
            "role 'a': key 'command' must be a command line",
        ),
    ] {
        match ScalingConfig::parse(text) {
            Err(err) => assert_eq!(err.to_string(), message, "for {text}"),
            Ok(config) => panic!("{text} parsed as {config:?}"),
        }
    }
}
