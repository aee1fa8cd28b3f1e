//! Tests of the graph module; expected JSON was printed by npm `fbp` 1.8.0.
#![allow(clippy::panic)]

use std::path::Path;

use serde_json::{Value, json};

use super::*;

fn fbp(src: &str) -> Graph {
    match parse_fbp(src, &ParseOptions::default()) {
        Ok(graph) => graph,
        Err(err) => panic!("{src:?} does not parse: {err}"),
    }
}

fn fbp_json(src: &str) -> Value {
    fbp(src).to_json()
}

fn syntax_error(src: &str) -> ParseError {
    match parse_fbp(src, &ParseOptions::default()) {
        Ok(graph) => panic!("{src:?} parsed: {graph:?}"),
        Err(err) => err,
    }
}

/// .fbp -> JSON -> .fbp -> JSON gives the same JSON, key order included.
fn assert_round_trip(src: &str, opts: ParseOptions) {
    let Ok(graph) = parse_fbp(src, &opts) else {
        return;
    };
    let text = graph.to_fbp();
    match parse_fbp(&text, &opts) {
        Ok(again) => assert_eq!(
            again.to_json().to_string(),
            graph.to_json().to_string(),
            "round trip of {src:?} via {text:?}"
        ),
        Err(err) => panic!("to_fbp of {src:?} gave {text:?}, which does not parse: {err}"),
    }
}

#[test]
fn msgflo_test_graph_matches_fbp() {
    let src = "# @runtime msgflo\nINPORT=a.IN:IN\nOUTPORT=b.OUT:OUT\n'hello-iip' -> IN a(Repeat) OUT -> IN b(PyRepeat)\n";
    let expected = json!({
        "inports": {"in": {"process": "a", "port": "in"}},
        "outports": {"out": {"process": "b", "port": "out"}},
        "groups": [],
        "processes": {"a": {"component": "Repeat"}, "b": {"component": "PyRepeat"}},
        "connections": [
            {"data": "hello-iip", "tgt": {"process": "a", "port": "in"}},
            {"src": {"process": "a", "port": "out"}, "tgt": {"process": "b", "port": "in"}}
        ],
        "properties": {"environment": {"type": "msgflo"}},
        "caseSensitive": false
    });
    let actual = fbp_json(src);
    assert_eq!(
        actual.to_string(),
        expected.to_string(),
        "same keys in the same order"
    );
}

#[test]
fn anonymous_nodes_are_numbered_per_component() {
    let json = fbp_json("(core/Kick) OUT -> IN (core/Kick), (my-lib/x) OUT -> IN b(C)");
    let names: Vec<&String> = json["processes"]
        .as_object()
        .map(|p| p.keys().collect())
        .unwrap_or_default();
    assert_eq!(names, ["_core_Kick_1", "_core_Kick_2", "_my_lib/x_1", "b"]);
    assert_eq!(
        json["connections"][1]["src"],
        json!({"process": "_my_lib/x_1", "port": "out"})
    );
}

#[test]
fn default_ports_apply_to_later_lines() {
    let json = fbp_json("DEFAULT_INPORT=Data\nDEFAULT_OUTPORT=Res\na(A) -> b(B)");
    assert_eq!(
        json["connections"],
        json!([{"src": {"process": "a", "port": "res"}, "tgt": {"process": "b", "port": "data"}}])
    );
}

#[test]
fn node_metadata_follows_fbp() {
    let json = fbp_json("P(Comp:x=12,y=abc,main,k=v=w,1=one)");
    let expected = json!({"component": "Comp", "metadata": {"1": "one", "x": 12, "y": null, "routes": "main", "k": "v"}});
    assert_eq!(json["processes"]["P"].to_string(), expected.to_string());
    let late = fbp_json("b(:label=foo)\nb(core/Out)");
    assert_eq!(
        late["processes"]["b"].to_string(),
        r#"{"metadata":{"label":"foo"},"component":"core/Out"}"#
    );
}

#[test]
fn annotations_become_properties() {
    let json = fbp_json("# @runtime msgflo\n# @name Temp graph\n# @1 one\na(A)");
    assert_eq!(
        json["properties"].to_string(),
        r#"{"1":"one","environment":{"type":"msgflo"},"name":"Temp graph"}"#
    );
    // Without a newline after it, an annotation is only a comment.
    assert!(fbp("a(A)\n# @name last").properties.is_empty());
}

#[test]
fn iips_strings_and_json() {
    let json = fbp_json(
        r#"'it\'s a\b' -> IN a(A), {"b": 1, "0": [true, null, 1.5e3]} -> IN a, 1e400 -> IN a, -0 -> IN a"#,
    );
    let data: Vec<&Value> = (0..4).map(|i| &json["connections"][i]["data"]).collect();
    assert_eq!(data[0], "it's a\\b");
    assert_eq!(data[1].to_string(), r#"{"0":[true,null,1500],"b":1}"#);
    assert_eq!(*data[2], Value::Null);
    assert_eq!(data[3].to_string(), "0");
    // Bare `true` is a node name, not an IIP.
    let edge = fbp("true -> IN a(A)");
    assert!(matches!(&edge.connections[0], Connection::Edge(e) if e.src.process == "true"));
}

#[test]
fn exports_indexes_and_case() {
    let src = "INPORT=a.In:In\nOUTPORT=(C).Out:Out\na(A) X[3]->Y[0] b(B)";
    let json = fbp_json(src);
    assert_eq!(
        json["inports"],
        json!({"in": {"process": "a", "port": "in"}})
    );
    assert_eq!(
        json["outports"],
        json!({"out": {"process": "_C_1", "port": "out"}})
    );
    assert_eq!(
        json["connections"][0],
        json!({"src": {"process": "a", "port": "x", "index": 3}, "tgt": {"process": "b", "port": "y", "index": 0}})
    );
    let sensitive = parse_fbp(
        src,
        &ParseOptions {
            case_sensitive: true,
        },
    )
    .map(|g| g.to_json())
    .unwrap_or_default();
    assert_eq!(
        sensitive["inports"],
        json!({"In": {"process": "a", "port": "In"}})
    );
    assert_eq!(sensitive["caseSensitive"], true);
}

#[test]
fn statements_comments_and_lines() {
    let graph = fbp("# header\n\na(A) OUT->IN b(B) # trailing\r\n'x' -> IN a, 'y' -> IN b\n");
    assert_eq!(graph.connections.len(), 3);
    assert_eq!(
        graph
            .connections
            .iter()
            .map(Connection::line)
            .collect::<Vec<_>>(),
        [Some(3), Some(4), Some(4)]
    );
    assert_eq!(graph.processes["b"].line, Some(3));
}

#[test]
fn syntax_errors_match_peg_js() {
    let err = syntax_error("a(Comp) OUT -> ");
    assert_eq!((err.line, err.column), (1, 16));
    assert_eq!(
        err.fbp_message(),
        r#"Expected " ", "'", "(", "[", "false", "null", "true", "{", [a-zA-Z_], number or string but end of input found."#
    );
    let err = syntax_error("a(A) OUT ->\nIN b");
    assert_eq!((err.line, err.column), (2, 1));
    assert_eq!(
        err.to_string(),
        r#"line 2, column 1: expected "[", "false", "null", "true", "{", number or string, found "I""#
    );
}

#[test]
fn limits_are_errors_not_crashes() {
    let deep = format!("{}{} -> IN a(A)", "[".repeat(100_000), "]".repeat(100_000));
    assert!(syntax_error(&deep).expected.contains("nested"));
    let long_chain = format!("a(A){}", " OUT -> IN a".repeat(50_000));
    assert_eq!(fbp(&long_chain).connections.len(), 50_000);
    assert!(
        syntax_error("a(A) OUT[99999999999] -> IN b(B)")
            .expected
            .contains("port index")
    );
}

#[test]
fn validation_follows_fbp() {
    let cases = [
        (
            "a() OUT -> IN b(B)",
            r#"Node "a" does not have a component defined (line 1)"#,
        ),
        (
            "INPORT=x.IN:IN\na(A)",
            r#"Inport "in" is connected to an undefined target node "x" (line 1)"#,
        ),
        (
            "a(A)\nOUTPORT=x.OUT:OUT",
            r#"Outport "out" is connected to an undefined source node "x" (line 2)"#,
        ),
        (
            "a(A)\n'5' -> IN x",
            r#"IIP containing "5" is connected to an undefined target node "x" (line 2)"#,
        ),
        (
            "[1, [2, null], {}] -> IN x",
            r#"IIP containing "1,2,,[object Object]" is connected to an undefined target node "x" (line 1)"#,
        ),
        (
            "a(A) OUT -> IN x",
            r#"Edge from "a" port "out" is connected to an undefined target node "x" (line 1)"#,
        ),
        (
            "x OUT -> IN a(A)",
            r#"Edge to "a" port "in" is connected to an undefined source node "x" (line 1)"#,
        ),
    ];
    for (src, message) in cases {
        let err = validate(&fbp(src)).err().map(|err| err.to_string());
        assert_eq!(err.as_deref(), Some(message), "{src}");
    }
    let Err(GraphError::Invalid(err)) =
        parse("x OUT -> IN a(A)", Format::Fbp, &ParseOptions::default())
    else {
        panic!("expected a validation error");
    };
    assert_eq!((err.process(), err.line()), ("x", Some(1)));
}

#[test]
fn to_fbp_round_trips() {
    let sources = [
        "# @runtime msgflo\n# @name my graph \nINPORT=a.IN:IN\nOUTPORT=b.OUT:OUT\n'hello-iip' -> IN a(Repeat) OUT -> IN b(PyRepeat)",
        "b(B)\na(A) OUT -> IN b",
        "(my-lib/x) OUT -> IN (a/b/c) OUT -> IN (a/b/c:x=1)\n(my-lib/x)",
        "P(Comp:x=12,y=abc,main,k=v=w,1=one,x=1e30,y=15e29) OUT[1] -> IN[2] Q(:routes=r)",
        r#"'it\'s' -> IN a(A), 'back\slash' -> IN a, "quote\"d\n" -> IN a, [true] -> IN a, 1e21 -> IN a, {"0": null} -> IN a"#,
        "b(:label=foo)\nb(core/Out) OUT -> IN c(C)\nd()",
        "a(A) OUT -> IN x",
        "# @environment foo\n# @runtime r\n",
    ];
    for src in sources {
        assert_round_trip(src, ParseOptions::default());
        assert_round_trip(
            src,
            ParseOptions {
                case_sensitive: true,
            },
        );
    }
    let mut graph = fbp("a(A)");
    for data in [Value::Bool(true), Value::Null, json!(false)] {
        graph.connections.push(Connection::Iip(Iip {
            data,
            tgt: PortRef {
                process: "a".into(),
                port: "in".into(),
                index: None,
            },
            metadata: None,
            line: None,
        }));
    }
    let again = fbp(&graph.to_fbp());
    assert_eq!(again.to_json(), graph.to_json());
}

#[test]
fn json_graphs_parse_and_convert() {
    let src = r#"{
        "caseSensitive": true,
        "properties": {"name": "g", "environment": {"type": "msgflo"}},
        "inports": {"IN": {"process": "a", "port": "IN", "metadata": {"x": 1}}},
        "groups": [{"name": "grp", "nodes": ["a"]}],
        "processes": {"a": {"component": "A", "metadata": {"x": 3}}, "b": {"component": "B"}},
        "connections": [
            {"data": null, "tgt": {"process": "a", "port": "IN"}},
            {"src": {"process": "a", "port": "OUT", "index": 2}, "tgt": {"process": "b", "port": "IN"}, "metadata": {"route": 1}}
        ]
    }"#;
    let graph = match parse_json(src) {
        Ok(graph) => graph,
        Err(err) => panic!("{err}"),
    };
    assert!(matches!(&graph.connections[0], Connection::Iip(iip) if iip.data.is_null()));
    assert_eq!(
        graph.to_json()["connections"][1]["metadata"],
        json!({"route": 1})
    );
    assert_eq!(
        graph.to_json()["groups"],
        json!([{"name": "grp", "nodes": ["a"]}])
    );
    assert!(validate(&graph).is_ok());
    // .fbp has no edge metadata, export metadata or groups; the rest survives.
    let reparsed = parse_fbp(
        &graph.to_fbp(),
        &ParseOptions {
            case_sensitive: true,
        },
    )
    .map(|g| g.to_json());
    let reparsed = reparsed.unwrap_or_default();
    assert_eq!(reparsed["processes"], graph.to_json()["processes"]);
    assert_eq!(reparsed["properties"], graph.to_json()["properties"]);
    assert_eq!(
        reparsed["connections"][1]["src"],
        json!({"process": "a", "port": "OUT", "index": 2})
    );
}

#[test]
fn json_errors_have_positions() {
    let cases = [
        ("[1, 2]", 1, JsonErrorKind::Shape),
        (
            "{\n  \"processes\": {\"a\": {\"component\": 5}}}",
            2,
            JsonErrorKind::Shape,
        ),
        (
            "{\"connections\": [\n{\"tgt\": {\"process\": \"a\", \"port\": \"in\"}}]}",
            2,
            JsonErrorKind::Shape,
        ),
        ("{\"bogus\": 1}", 1, JsonErrorKind::Shape),
        ("{\n\"processes\": }", 2, JsonErrorKind::Syntax),
        ("{\"processes\": {", 1, JsonErrorKind::Eof),
    ];
    for (src, line, kind) in cases {
        match parse_json(src) {
            Ok(graph) => panic!("{src} parsed: {graph:?}"),
            Err(err) => assert_eq!((err.line, err.kind), (line, kind), "{src}: {err}"),
        }
    }
}

#[test]
fn format_detection() {
    assert_eq!(
        Format::detect(Some(Path::new("g.json")), "a(A)"),
        Format::Json
    );
    assert_eq!(Format::detect(Some(Path::new("g.FBP")), "{}"), Format::Fbp);
    assert_eq!(
        Format::detect(None, "  \n{\"processes\": {}}"),
        Format::Json
    );
    assert_eq!(
        Format::detect(Some(Path::new("graph")), "a(A)"),
        Format::Fbp
    );
}

#[test]
fn garbled_input_never_panics() {
    const PIECES: &[&str] = &[
        "A",
        "b_1",
        "(Comp)",
        "(a/b-c)",
        "()",
        "(C:x=1,main)",
        " ",
        "  ",
        "->",
        " -> ",
        "IN",
        "OUT[2]",
        "[",
        "]",
        "'s'",
        "'\\'",
        "{\"a\":1}",
        "[1,",
        "5",
        "-1e5",
        "true",
        "\n",
        "\r\n",
        "\u{2028}",
        ",",
        "#",
        "# @name x\n",
        "INPORT=",
        "OUTPORT=a.B:C",
        "DEFAULT_INPORT=",
        ":",
        ".",
        "\"",
        "'",
        "\\",
        "é",
        "😀",
        "\t",
        "{",
        "}",
        "\"\\u12\"",
        "\0",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let len = next() % 30;
        let src: String = (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        let opts = ParseOptions {
            case_sensitive: next() % 2 == 0,
        };
        if let Ok(graph) = parse_fbp(&src, &opts) {
            let _ = validate(&graph);
            assert_round_trip(&src, opts);
        }
        let _ = parse_json(&src);
        let bytes: String = (0..len)
            .map(|_| char::from_u32((next() % 0x3000) as u32).unwrap_or('x'))
            .collect();
        let _ = parse_fbp(&bytes, &opts);
    }
}

#[test]
fn example_graphs_parse() {
    let graphs = [
        (
            include_str!("../../../graphs/temperature.fbp"),
            &["sensor", "format", "display"][..],
            5,
        ),
        (
            include_str!("../../../graphs/inside-outside.fbp"),
            &["inside", "outside", "combine", "display"][..],
            7,
        ),
    ];
    for (src, processes, connections) in graphs {
        let graph = match parse(src, Format::Fbp, &ParseOptions::default()) {
            Ok(graph) => graph,
            Err(err) => panic!("{err}"),
        };
        assert_eq!(graph.processes.keys().collect::<Vec<_>>(), processes);
        assert_eq!(graph.connections.len(), connections);
        assert_eq!(graph.properties["environment"], json!({"type": "wasmflo"}));
        assert_round_trip(src, ParseOptions::default());
    }
}
