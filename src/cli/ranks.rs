//! `nfnet train` as one of several ranks under `mpirun` (the `mpi` feature): each rank opens its
//! own adapter (by its rank on the machine, unless `NFNET_ADAPTER` names one) and trains its
//! shard of every batch; rank 0 alone prints progress and writes the run's files. A rank that
//! fails prints its error with its rank and aborts the whole job, so no rank waits for it.
//!
//! MPI starts only when a launcher set this process up (its environment says so): a plain
//! `nfnet train` never touches MPI, with or without the feature.

use nfnet::train::Collective;

/// This process's place among the ranks of the job.
pub struct Ranks {
    pub rank: usize,
    pub size: usize,
    /// The rank among those on this machine: the adapter it takes.
    local_rank: usize,
    #[cfg(feature = "mpi")]
    mpi: Option<(mpi::environment::Universe, mpi::topology::SimpleCommunicator)>,
}

/// Variables that OpenMPI's, MPICH's (Hydra) and PMIx launchers set in every rank.
#[cfg(feature = "mpi")]
const LAUNCHED: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"];

impl Ranks {
    /// The job's ranks when `mpirun` started this process, else one rank. Without the `mpi`
    /// feature, a launch of several ranks is an error: each would train alone, into the same
    /// folder.
    pub fn start() -> anyhow::Result<Ranks> {
        #[cfg(not(feature = "mpi"))]
        {
            let size = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
                .iter()
                .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok());
            if size.is_some_and(|n| n > 1) {
                anyhow::bail!(
                    "started by an MPI launcher, but this nfnet was built without the `mpi` feature, so every rank would \
                     train alone: build it with `cargo build --release --features mpi`"
                );
            }
        }
        #[cfg(feature = "mpi")]
        if LAUNCHED.iter().any(|v| std::env::var_os(v).is_some()) {
            if let Some(universe) = mpi::initialize() {
                use mpi::topology::Communicator;
                let world = universe.world();
                let local = world.split_shared(world.rank());
                return Ok(Ranks {
                    rank: world.rank() as usize,
                    size: world.size() as usize,
                    local_rank: local.rank() as usize,
                    mpi: Some((universe, world)),
                });
            }
        }
        Ok(Ranks {
            rank: 0,
            size: 1,
            local_rank: 0,
            #[cfg(feature = "mpi")]
            mpi: None,
        })
    }

    /// Rank 0 (or a lone process) does the talking and the writing.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// What the trainer exchanges gradients through; `None` for one rank.
    pub fn group(&self) -> Option<Box<dyn Collective>> {
        #[cfg(feature = "mpi")]
        if let Some((_, world)) = self.mpi.as_ref().filter(|_| self.size > 1) {
            return Some(Box::new(nfnet::train::mpi::MpiGroup::new(world)));
        }
        None
    }

    /// The adapter this rank opens: `NFNET_ADAPTER` when set, else, of several ranks on one
    /// machine, the `local_rank`-th of the adapters like the most capable one (same API and
    /// kind: one GPU per rank, never a mix of Vulkan and GL); `None` leaves the choice to
    /// [`nfnet::Gpu`].
    pub fn adapter(&self) -> Option<String> {
        if self.size == 1 || std::env::var_os("NFNET_ADAPTER").is_some() {
            return None;
        }
        let adapters = nfnet::gpu::list_adapters();
        let best = adapters.first()?;
        let peers: Vec<usize> = (adapters.iter())
            .filter(|a| (a.backend, a.device_type) == (best.backend, best.device_type))
            .map(|a| a.index)
            .collect();
        Some(peers[self.local_rank % peers.len()].to_string())
    }

    /// Reports `error` as this rank's and ends the whole job (every rank, at once).
    pub fn fail(&self, error: &anyhow::Error) -> ! {
        eprintln!("error: rank {} of {}: {error:#}", self.rank, self.size);
        #[cfg(feature = "mpi")]
        if let Some((_, world)) = &self.mpi {
            use mpi::topology::Communicator;
            world.abort(1);
        }
        std::process::exit(1)
    }
}
