//! The staff role each API operation needs, declared once: in the operation's OpenAPI
//! security requirement, as `security(("staff_token" = ["staff"]))`. OpenAPI 3.1 lets a
//! bearer scheme's requirement list role names, so the published description tells
//! clients which role an operation needs, and the [`Staff`](super::extract::Staff)
//! extractor enforces that very declaration, before the handler runs and before the
//! request body is read. Handlers still check the role themselves (the pages call them
//! directly), so the two agree by construction and an API test walks every operation
//! to prove it.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

use crate::store::Role;

/// The security scheme of staff tokens in the OpenAPI description.
pub const STAFF_SCHEME: &str = "staff_token";

/// Required roles by (method in capitals, route template).
#[derive(Debug, Default)]
pub struct RoleTable(HashMap<(String, String), Role>);

impl RoleTable {
    /// Reads the roles from an OpenAPI description: each operation whose every
    /// security requirement is a staff token with one role name. An operation that is
    /// also open without a token (`security((), ...)`) needs no role.
    pub fn from_openapi(spec: &Value) -> Self {
        let mut table = HashMap::new();
        let Some(paths) = spec["paths"].as_object() else {
            return Self(table);
        };
        for (path, operations) in paths {
            let Some(operations) = operations.as_object() else {
                continue;
            };
            for (method, operation) in operations {
                if let Some(role) = required_role(operation) {
                    table.insert((method.to_ascii_uppercase(), path.clone()), role);
                }
            }
        }
        Self(table)
    }

    /// The role an operation needs, if it needs one.
    pub fn required(&self, method: &str, route: &str) -> Option<Role> {
        self.0.get(&(method.to_owned(), route.to_owned())).copied()
    }
}

/// The role of an operation that can only be called with a staff token.
pub fn required_role(operation: &Value) -> Option<Role> {
    let requirements = operation["security"].as_array()?;
    let mut role = None;
    for requirement in requirements {
        let scopes = requirement.get(STAFF_SCHEME)?.as_array()?;
        let [name] = scopes.as_slice() else {
            return None;
        };
        role = Some(Role::parse(name.as_str()?)?);
    }
    role
}

/// The table of this service's own API.
pub fn table() -> &'static RoleTable {
    static TABLE: LazyLock<RoleTable> = LazyLock::new(|| {
        let spec = serde_json::to_value(super::openapi()).unwrap_or_default();
        RoleTable::from_openapi(&spec)
    });
    &TABLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_staff_operation_names_one_role() {
        let spec = serde_json::to_value(super::super::openapi()).unwrap();
        let mut staff_operations = 0;
        for (path, operations) in spec["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                let Some(requirements) = operation["security"].as_array() else {
                    continue;
                };
                let open = requirements
                    .iter()
                    .any(|r| r.as_object().unwrap().is_empty());
                for requirement in requirements {
                    if let Some(scopes) = requirement.get(STAFF_SCHEME)
                        && !open
                    {
                        staff_operations += 1;
                        assert_eq!(scopes.as_array().unwrap().len(), 1, "{method} {path}");
                        assert!(
                            required_role(operation).is_some(),
                            "{method} {path} names no known role: {scopes}"
                        );
                    }
                }
            }
        }
        assert!(staff_operations > 10);
        assert_eq!(
            table().required("POST", "/api/v1/staff-tokens"),
            Some(Role::Admin)
        );
        assert_eq!(
            table().required("GET", "/api/v1/audit/events"),
            Some(Role::Auditor)
        );
        assert_eq!(table().required("GET", "/api/v1/windows"), None);
    }
}
