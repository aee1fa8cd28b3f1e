use crate::graph::{Graph, ParseOptions, parse_fbp, parse_json};

const TEMPERATURE: &str = "\
# @name temperature
INPORT=sensor.INTERVAL:TICK
OUTPORT=display.SHOWN:SHOWN
'1000' -> INTERVAL sensor(temperature/Sensor)
'a very long value that is cut' -> BASE sensor
sensor OUT -> IN format(temperature/Format) OUT -> IN display(temperature/Display)
";

fn fbp(src: &str) -> Graph {
    parse_fbp(src, &ParseOptions::default()).expect("valid .fbp")
}

/// Checks that `doc` is one well-formed XML element as far as these pictures go (elements,
/// double-quoted attributes, the five predefined entities) and returns each `<text>`'s text.
fn well_formed(doc: &str) -> Result<Vec<String>, String> {
    fn unescape(chunk: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = chunk;
        while let Some(at) = rest.find('&') {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            let entity = [("&amp;", '&'), ("&lt;", '<'), ("&gt;", '>')]
                .into_iter()
                .chain([("&quot;", '"'), ("&apos;", '\'')])
                .find(|(e, _)| tail.starts_with(e))
                .ok_or_else(|| format!("bare & in {chunk:?}"))?;
            out.push(entity.1);
            rest = &tail[entity.0.len()..];
        }
        out.push_str(rest);
        Ok(out)
    }
    let (mut stack, mut texts, mut roots) = (Vec::<&str>::new(), Vec::new(), 0);
    let mut rest = doc;
    while let Some(open) = rest.find('<') {
        let text = unescape(&rest[..open])?;
        if rest[..open].contains('>') || (stack.is_empty() && !text.trim().is_empty()) {
            return Err(format!("stray text {text:?}"));
        }
        if stack.last() == Some(&"text") {
            texts.push(text);
        }
        let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop() != Some(name) {
                return Err(format!("</{name}> closes nothing open"));
            }
            continue;
        }
        let (body, empty) = match tag.strip_suffix('/') {
            Some(body) => (body, true),
            None => (tag, false),
        };
        let name_end = body.find(char::is_whitespace).unwrap_or(body.len());
        let mut attrs = body[name_end..].trim();
        while !attrs.is_empty() {
            let (key, value) = attrs
                .split_once("=\"")
                .ok_or(format!("attribute in {tag:?}"))?;
            let end = value
                .find('"')
                .ok_or(format!("unquoted value in {tag:?}"))?;
            if key.is_empty() || key.contains(char::is_whitespace) || value[..end].contains('<') {
                return Err(format!("bad attribute in {tag:?}"));
            }
            unescape(&value[..end])?;
            attrs = value[end + 1..].trim_start();
        }
        if stack.is_empty() {
            roots += 1;
        }
        if !empty {
            stack.push(&body[..name_end]);
        }
    }
    match (stack.is_empty(), roots, rest.trim().is_empty()) {
        (true, 1, true) => Ok(texts),
        _ => Err(format!("unbalanced: open {stack:?}, {roots} roots")),
    }
}

#[test]
fn checker_rejects_broken_xml() {
    for bad in [
        "<svg><g></svg>",
        "<svg>a & b</svg>",
        "<svg/><svg/>",
        "<svg x=1/>",
    ] {
        assert!(well_formed(bad).is_err(), "{bad}");
    }
    let texts = well_formed("<svg a=\"&lt;\"><text>x &amp; y</text><g/></svg>");
    assert_eq!(texts, Ok(vec!["x & y".to_string()]));
}

#[test]
fn dot_has_every_process_edge_iip_and_export() {
    let dot = fbp(TEMPERATURE).to_dot();
    assert!(dot.starts_with("digraph \"temperature\" {\n"), "{dot}");
    for name in ["sensor", "format", "display"] {
        assert!(
            dot.contains(&format!("  \"{name}\" [shape=record")),
            "{name}: {dot}"
        );
    }
    assert!(
        dot.contains(
            "{{<interval> interval|<base> base}|{sensor\\ntemperature/Sensor}|{<out> out}}"
        )
    );
    assert!(dot.contains("  \"sensor\":\"out\":e -> \"format\":\"in\":w;\n"));
    assert!(dot.contains("  \"format\":\"out\":e -> \"display\":\"in\":w;\n"));
    assert!(dot.contains("label=\"\\\"1000\\\"\"];\n  \"iip\" -> \"sensor\":\"interval\":w"));
    assert!(
        dot.contains("label=\"\\\"a very long value that…\"]"),
        "{dot}"
    );
    assert!(dot.contains("shape=cds, style=filled, fillcolor=\"#dbeafe\", label=\"tick\""));
    assert!(dot.contains("shape=rarrow, style=filled, fillcolor=\"#dcfce7\", label=\"shown\""));
    assert!(dot.contains("  \"display\":\"shown\":e -> \"out\";\n"));
    assert!(dot.ends_with("}\n"));
}

#[test]
fn svg_is_well_formed_with_every_name_as_text() {
    let svg = fbp(TEMPERATURE).to_svg();
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    let texts = well_formed(&svg).expect("well-formed");
    for text in [
        "temperature",
        "sensor",
        "temperature/Sensor",
        "format",
        "temperature/Format",
        "display",
        "temperature/Display",
        "interval",
        "\"1000\"",
        "\"a very long value that…",
        "tick",
        "shown",
    ] {
        assert!(
            texts.iter().any(|t| t == text),
            "{text:?} missing in {texts:?}"
        );
    }
    assert_eq!(svg.matches("marker-end=\"url(#arrow)\"").count(), 2 + 3);
}

#[test]
fn names_and_iips_are_escaped() {
    let graph = parse_json(
        r#"{"processes": {"a<&>\"b": {"component": "x/<Y>&\"Z\""}, "c d": {"component": "C|{}"}},
            "connections": [
              {"src": {"process": "a<&>\"b", "port": "out"}, "tgt": {"process": "c d", "port": "i n"}},
              {"data": "</text>&\"<", "tgt": {"process": "a<&>\"b", "port": "in"}}]}"#,
    )
    .expect("valid JSON graph");
    let svg = graph.to_svg();
    let texts = well_formed(&svg).expect("well-formed");
    for text in ["a<&>\"b", "x/<Y>&\"Z\"", "c d", "C|{}", "\"</text>&\\\"<\""] {
        assert!(
            texts.iter().any(|t| t == text),
            "{text:?} missing in {texts:?}"
        );
    }
    assert!(svg.contains("a&lt;&amp;&gt;&quot;b"));
    assert!(!svg.contains("a<&"));
    let dot = graph.to_dot();
    assert!(dot.contains("  \"a<&>\\\"b\" [shape=record, label=\"{{<in> in}|{a\\<&\\>\\\"b"));
    assert!(dot.contains("{c\\ d\\nC\\|\\{\\}}"), "{dot}");
    assert!(
        dot.contains("\"a<&>\\\"b\":\"out\":e -> \"c d\":\"i_n\":w;"),
        "{dot}"
    );
}

#[test]
fn pictures_are_deterministic() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../graphs/inside-outside.fbp"
    ))
    .expect("example graph");
    let (one, two) = (fbp(&src), fbp(&src));
    assert_eq!(one.to_svg(), two.to_svg());
    assert_eq!(one.to_dot(), two.to_dot());
    assert!(
        well_formed(&one.to_svg())
            .expect("well-formed")
            .contains(&"combine".into())
    );
}

#[test]
fn cycles_and_empty_graphs_render() {
    let graph =
        fbp("a(A) OUT -> IN b(B) OUT -> IN c(C) OUT -> IN a\nc LOOP -> BACK c\n'1' -> IN d(D)");
    let svg = graph.to_svg();
    let texts = well_formed(&svg).expect("well-formed");
    for name in ["a", "b", "c", "d", "A", "B", "C", "D"] {
        assert!(texts.iter().any(|t| t == name), "{name} missing");
    }
    // The two edges that close cycles run below the boxes: two-segment curves.
    let back = svg
        .lines()
        .filter(|l| l.starts_with("<path d=\"M") && l.contains(" L") && l.contains(" C"));
    assert_eq!(back.count(), 2, "{svg}");
    assert!(
        graph
            .to_dot()
            .contains("\"c\":\"out\":e -> \"a\":\"in\":w;")
    );
    let empty = Graph::default();
    assert_eq!(well_formed(&empty.to_svg()), Ok(Vec::new()));
    assert_eq!(
        empty.to_dot(),
        "digraph \"graph\" {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n}\n"
    );
}
