//! Rule ids: the names a decision is reported under (headers, logs, metrics, `explain`).

/// Every rule of INTERFACE.md. The order is the order rules are reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    NoProject,
    UnknownEndpoint,
    EndpointRegion,
    ModelNotEligible,
    ZdrEndpoint,
    ZdrModel,
    StatefulFeature,
    Store,
    ImageInput,
    Hipaa,
    Alias,
    ToolNotEligible,
    EncryptedReasoning,
}

impl Rule {
    pub const ALL: [Rule; 13] = [
        Rule::NoProject,
        Rule::UnknownEndpoint,
        Rule::EndpointRegion,
        Rule::ModelNotEligible,
        Rule::ZdrEndpoint,
        Rule::ZdrModel,
        Rule::StatefulFeature,
        Rule::Store,
        Rule::ImageInput,
        Rule::Hipaa,
        Rule::Alias,
        Rule::ToolNotEligible,
        Rule::EncryptedReasoning,
    ];

    /// The wire id (`x-residency-rule`).
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::NoProject => "no_project",
            Rule::UnknownEndpoint => "unknown_endpoint",
            Rule::EndpointRegion => "endpoint_region",
            Rule::ModelNotEligible => "model_not_eligible",
            Rule::ZdrEndpoint => "zdr_endpoint",
            Rule::ZdrModel => "zdr_model",
            Rule::StatefulFeature => "stateful_feature",
            Rule::Store => "store",
            Rule::ImageInput => "image_input",
            Rule::Hipaa => "hipaa",
            Rule::Alias => "alias",
            Rule::ToolNotEligible => "tool_not_eligible",
            Rule::EncryptedReasoning => "encrypted_reasoning",
        }
    }
}

/// A set of rules, without allocation. Iterates in [`Rule::ALL`] order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RuleSet(u16);

impl RuleSet {
    pub fn insert(&mut self, rule: Rule) {
        self.0 |= 1 << (rule as u16);
    }
    pub fn contains(self, rule: Rule) -> bool {
        self.0 & (1 << (rule as u16)) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Adds every rule of `other`.
    pub fn extend(&mut self, other: RuleSet) {
        self.0 |= other.0;
    }
    pub fn iter(self) -> impl Iterator<Item = Rule> {
        Rule::ALL.into_iter().filter(move |r| self.contains(*r))
    }
    /// Comma-separated wire ids, e.g. `store,alias`.
    pub fn header_value(self) -> String {
        let mut out = String::new();
        for r in self.iter() {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(r.as_str());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_is_the_union() {
        let (mut a, mut b) = (RuleSet::default(), RuleSet::default());
        a.insert(Rule::ALL[0]);
        b.insert(Rule::ALL[1]);
        b.insert(Rule::ALL[0]);
        a.extend(b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![Rule::ALL[0], Rule::ALL[1]]);
        a.extend(RuleSet::default());
        assert_eq!(a.iter().count(), 2);
    }
}
