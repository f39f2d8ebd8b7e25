//! `wasi:sockets/ip-name-lookup@0.2.x`: the resolve stream resource over the lookup core.

use crate::WasiCtxView;
use crate::bindings::wasi::sockets::ip_name_lookup;
use crate::bindings::wasi::sockets::network::IpAddress;
use crate::io::{PollableResource, subscribe};
use crate::sockets::ip_name_lookup::*;
use crate::sockets::{Network, SocketResult};
use wasmtime::component::Resource;

impl ip_name_lookup::Host for WasiCtxView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> SocketResult<Resource<ResolveAddressStream>> {
        let policy = self.table.get(&network)?.policy.clone();
        let stream = start_lookup(&self.ctx.sockets, &policy, name)?;
        Ok(self.table.push(stream)?)
    }
}

impl ip_name_lookup::HostResolveAddressStream for WasiCtxView<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> SocketResult<Option<IpAddress>> {
        self.table.get_mut(&stream)?.next_address()
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<PollableResource>> {
        subscribe(self.table, &stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}
