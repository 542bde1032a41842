//! The `promwasm:app/route-handler` world's bindings. An app never uses
//! them directly: [`export_app!`](crate::export_app) wires them.

wit_bindgen::generate!({
    path: "../../wit",
    world: "route-handler",
    pub_export_macro: true,
    default_bindings_module: "promwasm_sdk::bindings",
    additional_derives: [PartialEq],
});
