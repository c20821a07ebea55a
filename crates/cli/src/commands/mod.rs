pub mod completion;
pub mod install;
pub mod uninstall;
pub mod version;
