pub mod backup;
pub mod completion;
pub mod install;
pub mod location;
pub mod restore;
pub mod server;
pub mod uninstall;
pub mod version;
