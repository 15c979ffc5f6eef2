//! This process's live sockets by user: one socket per session.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use actix_socketio::Socket;
use chat_domain::UserId;

use crate::realtime::handler::SocketState;

/// User id → the user's live socket on this process.
#[derive(Default)]
pub struct Registry {
    sockets: RwLock<HashMap<UserId, Socket<SocketState>>>,
}

impl Registry {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<UserId, Socket<SocketState>>> {
        self.sockets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<UserId, Socket<SocketState>>> {
        self.sockets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `socket` as its user's live socket; returns the socket it replaces.
    pub fn insert(&self, socket: Socket<SocketState>) -> Option<Socket<SocketState>> {
        let user = socket.state().user_id.clone();
        let socket_id = socket.id().to_owned();
        self.write()
            .insert(user, socket)
            .filter(|old| old.id() != socket_id)
    }

    /// Removes `socket` if it is still its user's live socket; returns whether it was.
    pub fn remove(&self, socket: &Socket<SocketState>) -> bool {
        let mut sockets = self.write();
        let user = &socket.state().user_id;
        if sockets
            .get(user)
            .is_some_and(|current| current.id() == socket.id())
        {
            sockets.remove(user);
            true
        } else {
            false
        }
    }

    /// The live socket of `user` on this process.
    pub fn get(&self, user: &UserId) -> Option<Socket<SocketState>> {
        self.read().get(user).cloned()
    }

    /// Every live socket (a snapshot).
    pub fn all(&self) -> Vec<Socket<SocketState>> {
        self.read().values().cloned().collect()
    }

    /// Number of live sockets.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no socket is live.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}
