//! One semantic index: a usearch HNSW graph (cosine, f16) of one tenant's questions for one model family
//! and one embedding model. Keys are cache entry ids. Searches share a read lock; adds, removals and the
//! compaction that drops removed slots take the write lock.

use std::collections::HashMap;
use std::sync::RwLock;

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::key::Key;

/// A usearch failure (the message is the library's).
#[derive(Debug, thiserror::Error)]
#[error("semantic index: {0}")]
pub struct IndexError(String);

fn failed(e: impl std::fmt::Display) -> IndexError {
    IndexError(e.to_string())
}

pub struct SemanticIndex {
    dims: usize,
    /// Concurrent searches the index has thread slots for.
    threads: usize,
    inner: RwLock<Graph>,
}

struct Graph {
    index: Index,
    /// Each entry's context key: a search only returns entries of the asker's context.
    contexts: HashMap<u64, Key>,
    /// Entries removed since the last rebuild (`size` no longer counts them, but their slots stay in the
    /// graph until then).
    removed: usize,
}

impl std::fmt::Debug for SemanticIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticIndex")
            .field("dims", &self.dims)
            .field("size", &self.len())
            .finish_non_exhaustive()
    }
}

fn options(dims: usize) -> IndexOptions {
    IndexOptions {
        dimensions: dims,
        metric: MetricKind::Cos,
        quantization: ScalarKind::F16,
        connectivity: 0,
        expansion_add: 0,
        expansion_search: 0,
        multi: false,
    }
}

/// One neighbour: an entry id and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    pub id: u64,
    pub similarity: f32,
}

impl SemanticIndex {
    /// An empty index of `dims`-dimensional vectors, with `threads` search slots: as many as threads may
    /// search at once (the server's async workers and the blocking threads that search).
    pub fn new(dims: usize, threads: usize) -> Result<SemanticIndex, IndexError> {
        let index = Index::new(&options(dims)).map_err(failed)?;
        index
            .reserve_capacity_and_threads(64, threads)
            .map_err(failed)?;
        Ok(SemanticIndex {
            dims,
            threads,
            inner: RwLock::new(Graph {
                index,
                contexts: HashMap::new(),
                removed: 0,
            }),
        })
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn len(&self) -> usize {
        self.read().index.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes usearch says the graph and vectors take.
    pub fn memory_usage(&self) -> usize {
        self.read().index.memory_usage()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Graph> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Graph> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds entry `id` of `context`, growing the reservation (doubling) when full.
    pub fn add(&self, id: u64, vector: &[f32], context: Key) -> Result<(), IndexError> {
        if vector.len() != self.dims {
            return Err(IndexError(format!(
                "a vector of {} dimensions in an index of {}",
                vector.len(),
                self.dims
            )));
        }
        let mut graph = self.write();
        let index = &graph.index;
        if index.size() + 1 > index.capacity() {
            index
                .reserve_capacity_and_threads((index.capacity() * 2).max(64), self.threads)
                .map_err(failed)?;
        }
        index.add(id, vector).map_err(failed)?;
        graph.contexts.insert(id, context);
        Ok(())
    }

    /// Marks entry `id` removed.
    pub fn remove(&self, id: u64) {
        let mut graph = self.write();
        if graph.index.remove(id).is_ok_and(|n| n > 0) {
            graph.removed += 1;
        }
        graph.contexts.remove(&id);
    }

    /// Removed slots, not yet dropped by a rebuild.
    pub fn removed(&self) -> usize {
        self.read().removed
    }

    /// The `count` nearest entries of `context` to `query`, most similar first.
    pub fn search(
        &self,
        query: &[f32],
        count: usize,
        context: &Key,
    ) -> Result<Vec<Neighbour>, IndexError> {
        let graph = self.read();
        if graph.index.size() == 0 {
            return Ok(Vec::new());
        }
        let found = graph
            .index
            .filtered_search(query, count, |id| graph.contexts.get(&id) == Some(context))
            .map_err(failed)?;
        Ok(found
            .keys
            .iter()
            .zip(&found.distances)
            .map(|(&id, &distance)| Neighbour {
                id,
                similarity: 1.0 - distance,
            })
            .collect())
    }

    /// Drops removed slots: a fresh graph of the live entries, their vectors read back from this one
    /// (dequantized from f16). Searches wait for it; it runs when removals pile up.
    pub fn compact(&self) -> Result<(), IndexError> {
        let mut graph = self.write();
        let fresh = Index::new(&options(self.dims)).map_err(failed)?;
        fresh
            .reserve_capacity_and_threads(graph.contexts.len().max(64), self.threads)
            .map_err(failed)?;
        let mut vector = vec![0f32; self.dims];
        for &id in graph.contexts.keys() {
            graph.index.get(id, &mut vector).map_err(failed)?;
            fresh.add(id, &vector).map_err(failed)?;
        }
        graph.index = fresh;
        graph.removed = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn nearest_first_filtered_removed_and_rebuilt() {
        let index = SemanticIndex::new(4, 4).unwrap();
        for id in 0..200u64 {
            let angle = id as f32 / 100.0;
            index
                .add(
                    id,
                    &unit(&[angle.cos(), angle.sin(), 0.1, 0.0]),
                    [(id % 2) as u8; 32],
                )
                .unwrap();
        }
        assert_eq!(index.len(), 200);
        let query = unit(&[1.0f32.cos(), 1.0f32.sin(), 0.1, 0.0]);
        let near = index.search(&query, 3, &[0; 32]).unwrap();
        assert_eq!(near[0].id, 100);
        assert!(near[0].similarity > 0.999, "{near:?}");
        assert!(near[0].similarity >= near[1].similarity);
        let odd = index.search(&query, 3, &[1; 32]).unwrap();
        assert!(
            !odd.is_empty() && odd.iter().all(|n| n.id % 2 == 1),
            "{odd:?}"
        );
        assert!(
            index.search(&query, 3, &[7; 32]).unwrap().is_empty(),
            "another context finds nothing"
        );
        index.remove(100);
        assert_eq!((index.len(), index.removed()), (199, 1));
        assert_ne!(index.search(&query, 1, &[0; 32]).unwrap()[0].id, 100);
        index.compact().unwrap();
        assert_eq!((index.len(), index.removed()), (199, 0));
        let near = index.search(&query, 2, &[0; 32]).unwrap();
        assert!(
            [98, 102].contains(&near[0].id),
            "the neighbours survive compaction: {near:?}"
        );
        assert!(near[0].similarity > 0.99, "{near:?}");
        assert!(
            index.add(1, &[1.0, 0.0], [0; 32]).is_err(),
            "dimensions are checked"
        );
    }
}
