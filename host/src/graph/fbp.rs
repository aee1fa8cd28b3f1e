//! The .fbp parser: a transcription of npm `fbp` 1.8.0's PEG grammar (`grammar/fbp.peg`).
//!
//! The grammar is run the way the generated PEG.js parser runs it: ordered choice with
//! backtracking, no memoisation, and actions that take effect as soon as their rule matches
//! (even inside an alternative that later fails). Error reporting follows PEG.js too: the
//! furthest position where a terminal failed, with every terminal expected there.

mod build;
mod literal;
mod parser;

use thiserror::Error;

pub(crate) use build::anonymous_base;

use super::model::{Graph, ParseOptions};

/// A .fbp syntax error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: expected {expected}, found {found}")]
pub struct ParseError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in UTF-16 code units like PEG.js.
    pub column: u32,
    /// What the grammar would have accepted there, as PEG.js lists it
    /// (`"->", [a-zA-Z_] or end of input`).
    pub expected: String,
    /// What was there instead: a quoted character or `end of input`.
    pub found: String,
}

impl ParseError {
    /// The message fbp itself would throw (`Expected ... but ... found.`).
    pub fn fbp_message(&self) -> String {
        format!("Expected {} but {} found.", self.expected, self.found)
    }
}

/// Parses .fbp source into a graph exactly as `fbp.parse(src, {caseSensitive})` does,
/// without fbp's validation step (see [`super::validate`]).
pub fn parse_fbp(src: &str, opts: &ParseOptions) -> Result<Graph, ParseError> {
    parser::Parser::new(src, *opts).run()
}
