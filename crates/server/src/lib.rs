pub mod inventory;
pub mod render;
