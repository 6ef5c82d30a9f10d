//! [`MpiGroup`]: a [`Collective`] over an MPI communicator (rsmpi), for ranks that are processes
//! started by `mpirun`, on one machine or many. MPI only moves the bytes; the sums are
//! [`super::collective::mean_over_ranks`]'s, in rank order, whatever algorithm MPI picks.
//!
//! MPI's default error handler on `MPI_COMM_WORLD` aborts the whole job on a failed call, so a
//! rank that dies ends every rank's wait with an error from `mpirun` rather than a hang.

use super::collective::Collective;
use crate::error::Result;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::CommunicatorCollectives;

/// The ranks of `comm` (see the module docs).
pub struct MpiGroup {
    comm: SimpleCommunicator,
}

impl MpiGroup {
    /// Training's own communicator: a duplicate of `comm`, so its calls never meet the
    /// application's.
    pub fn new(comm: &SimpleCommunicator) -> MpiGroup {
        MpiGroup { comm: comm.duplicate() }
    }
}

impl Collective for MpiGroup {
    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    fn ranks(&self) -> usize {
        self.comm.size() as usize
    }

    fn all_to_all(&self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        self.comm.all_to_all_into(send, recv);
        Ok(())
    }

    fn all_gather(&self, mine: &[u8], all: &mut [u8]) -> Result<()> {
        self.comm.all_gather_into(mine, all);
        Ok(())
    }
}
