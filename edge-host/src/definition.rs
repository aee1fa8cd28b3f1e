//! A component's self-description, as its `definition` export returns it.

use alloc::string::String;
use alloc::vec::Vec;

/// What a component says it is: name, ports, parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Definition {
    /// Component name, e.g. `core/Repeat`.
    pub component: String,
    /// One line for humans.
    pub label: String,
    /// Font Awesome icon name.
    pub icon: String,
    /// Inports in declaration order.
    pub inports: Vec<PortDef>,
    /// Outports in declaration order.
    pub outports: Vec<PortDef>,
}

impl Definition {
    /// The inport named `id`, compared case-insensitively as `.fbp` lowercases ports.
    pub fn inport(&self, id: &str) -> Option<&PortDef> {
        self.inports.iter().find(|p| p.id.eq_ignore_ascii_case(id))
    }

    /// The index of outport `id`, compared case-insensitively.
    pub fn outport_index(&self, id: &str) -> Option<usize> {
        self.outports
            .iter()
            .position(|p| p.id.eq_ignore_ascii_case(id))
    }
}

/// One port of a [`Definition`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortDef {
    /// Port name.
    pub id: String,
    /// FBP data type (`any`, `number`, ...).
    pub type_: String,
    /// One line for humans.
    pub description: String,
    /// Optional JSON schema.
    pub schema: Option<String>,
    /// Whether this inport is a run-time parameter.
    pub parameter: bool,
}
