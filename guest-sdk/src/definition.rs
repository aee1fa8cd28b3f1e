//! `Definition` and `Port`: what a component says about itself.

/// One inport or outport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub(crate) id: String,
    pub(crate) ty: String,
    pub(crate) description: String,
    pub(crate) schema: Option<String>,
    pub(crate) parameter: bool,
}

impl Port {
    /// A port named `id` carrying FBP data type `ty` (`any`, `number`, `string`, ...).
    pub fn new(id: impl Into<String>, ty: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ty: ty.into(),
            description: String::new(),
            schema: None,
            parameter: false,
        }
    }

    /// Sets the one-line description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets a JSON schema (inline JSON or a URL) for the payload.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Marks an inport as a parameter: the host replays its last message into new instances.
    #[must_use]
    pub fn parameter(mut self) -> Self {
        self.parameter = true;
        self
    }

    /// The port name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The FBP data type.
    pub fn ty(&self) -> &str {
        &self.ty
    }

    /// Whether this is a parameter inport.
    pub fn is_parameter(&self) -> bool {
        self.parameter
    }
}

/// What a component is: name, label, icon and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub(crate) component: String,
    pub(crate) label: String,
    pub(crate) icon: String,
    pub(crate) inports: Vec<Port>,
    pub(crate) outports: Vec<Port>,
}

impl Definition {
    /// A component named `component`, such as `core/Repeat`, with no ports yet.
    pub fn new(component: impl Into<String>) -> Self {
        Self {
            component: component.into(),
            label: String::new(),
            icon: String::new(),
            inports: Vec::new(),
            outports: Vec::new(),
        }
    }

    /// Sets the one-line label.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Sets the Font Awesome icon name.
    #[must_use]
    pub fn icon(mut self, icon: impl Into<String>) -> Self {
        self.icon = icon.into();
        self
    }

    /// Adds an inport.
    #[must_use]
    pub fn inport(mut self, port: Port) -> Self {
        self.inports.push(port);
        self
    }

    /// Adds an outport.
    #[must_use]
    pub fn outport(mut self, port: Port) -> Self {
        self.outports.push(port);
        self
    }

    /// The component name.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The declared inports.
    pub fn inports(&self) -> &[Port] {
        &self.inports
    }

    /// The declared outports.
    pub fn outports(&self) -> &[Port] {
        &self.outports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_collects_ports() {
        let def = Definition::new("core/Repeat")
            .label("Repeats")
            .inport(Port::new("in", "any").description("input"))
            .inport(Port::new("rate", "number").parameter())
            .outport(Port::new("out", "any"));
        assert_eq!(def.component(), "core/Repeat");
        assert_eq!(def.inports().len(), 2);
        assert!(def.inports()[1].is_parameter());
        assert!(!def.inports()[0].is_parameter());
        assert_eq!(def.outports()[0].id(), "out");
        assert_eq!(def.outports()[0].ty(), "any");
    }
}
