//! One semantic index: a usearch HNSW graph (cosine, f16) of one tenant's questions for one model family
//! and one embedding model. Keys are cache entry ids. Searches share a read lock; adds, removals and the
//! compaction that drops removed slots take the write lock.
//!
//! A small index is a flat list searched exhaustively (exact f32 cosines): usearch reserves memory-mapped
//! arenas of 8 MiB for its graph and 8 MiB for its vectors however few entries it holds, which a cache of
//! many small tenants cannot pay per index. The graph is built when the list outgrows `FLAT_LIMIT`.

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

/// Entries an index keeps in a flat list before it builds its graph.
pub const FLAT_LIMIT: usize = 256;

struct Graph {
    /// The HNSW graph, once the index has outgrown the flat list.
    index: Option<Index>,
    /// The entries of a small index, with their vectors.
    flat: HashMap<u64, Vec<f32>>,
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

/// Candidates a graph search keeps (usearch's default is 64). A cache looks for a near repeat of a stored
/// question, not for the nearest of many far ones: on 100 000 clustered entries, 24 finds the reworded
/// entry (cosine 0.89) in 195 searches of 200 (`cargo bench --bench cache`), where 64 took about twice the
/// time to find all 200. What it misses is a cache miss, never a wrong answer.
const EXPANSION_SEARCH: usize = 24;

fn options(dims: usize) -> IndexOptions {
    IndexOptions {
        dimensions: dims,
        metric: MetricKind::Cos,
        quantization: ScalarKind::F16,
        connectivity: 0,
        expansion_add: 0,
        expansion_search: EXPANSION_SEARCH,
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
        if dims == 0 {
            return Err(IndexError("an index of 0 dimensions".to_owned()));
        }
        Ok(SemanticIndex {
            dims,
            threads,
            inner: RwLock::new(Graph {
                index: None,
                flat: HashMap::new(),
                contexts: HashMap::new(),
                removed: 0,
            }),
        })
    }

    /// A graph with room for `capacity` entries.
    fn graph(&self, capacity: usize) -> Result<Index, IndexError> {
        let index = Index::new(&options(self.dims)).map_err(failed)?;
        index
            .reserve_capacity_and_threads(capacity.max(64), self.threads)
            .map_err(failed)?;
        Ok(index)
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn len(&self) -> usize {
        let graph = self.read();
        graph.index.as_ref().map_or(graph.flat.len(), Index::size)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the vectors and the graph take (as usearch counts them, reserved arenas included).
    pub fn memory_usage(&self) -> usize {
        let graph = self.read();
        match &graph.index {
            Some(index) => index.memory_usage(),
            None => graph.flat.len() * (self.dims * 4 + 8),
        }
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
        if graph.index.is_none() && graph.flat.len() < FLAT_LIMIT {
            graph.flat.insert(id, unit(vector));
            graph.contexts.insert(id, context);
            return Ok(());
        }
        if graph.index.is_none() {
            let index = self.graph(FLAT_LIMIT * 2)?;
            for (&key, v) in &graph.flat {
                index.add(key, v).map_err(failed)?;
            }
            graph.flat = HashMap::new();
            graph.index = Some(index);
        }
        let Some(index) = &graph.index else {
            unreachable!("built above");
        };
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
        let removed = match &graph.index {
            Some(index) => index.remove(id).is_ok_and(|n| n > 0),
            None => {
                graph.flat.remove(&id);
                false
            }
        };
        if removed {
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
        let Some(index) = &graph.index else {
            // Unit vectors on both sides: the cosine is the dot product.
            let query = unit(query);
            let mut near: Vec<Neighbour> = graph
                .flat
                .iter()
                .filter(|(id, _)| graph.contexts.get(id) == Some(context))
                .map(|(&id, v)| Neighbour {
                    id,
                    similarity: dot(&query, v),
                })
                .collect();
            near.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
            near.truncate(count);
            return Ok(near);
        };
        if index.size() == 0 {
            return Ok(Vec::new());
        }
        let found = index
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
        let Some(index) = &graph.index else {
            return Ok(());
        };
        let fresh = self.graph(graph.contexts.len())?;
        let mut vector = vec![0f32; self.dims];
        for &id in graph.contexts.keys() {
            index.get(id, &mut vector).map_err(failed)?;
            fresh.add(id, &vector).map_err(failed)?;
        }
        graph.index = Some(fresh);
        graph.removed = 0;
        Ok(())
    }
}

/// `v` scaled to length 1 (a zero vector stays zero: its cosine with anything is 0).
fn unit(v: &[f32]) -> Vec<f32> {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

/// The dot product, in eight independent sums so the compiler can keep them in one vector register.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_first_filtered_removed_and_rebuilt_flat_and_as_a_graph() {
        for entries in [200u64, 600] {
            let graph = entries as usize > FLAT_LIMIT;
            let index = SemanticIndex::new(4, 4).unwrap();
            for id in 0..entries {
                let angle = id as f32 / 100.0;
                index
                    .add(
                        id,
                        &unit(&[angle.cos(), angle.sin(), 0.1, 0.0]),
                        [(id % 2) as u8; 32],
                    )
                    .unwrap();
            }
            assert_eq!(index.len(), entries as usize);
            assert_eq!(index.read().index.is_some(), graph);
            let query = unit(&[1.0f32.cos(), 1.0f32.sin(), 0.1, 0.0]);
            let near = index.search(&query, 3, &[0; 32]).unwrap();
            assert_eq!(near[0].id, 100, "{entries}");
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
            let live = entries as usize - 1;
            assert_eq!((index.len(), index.removed()), (live, usize::from(graph)));
            assert_ne!(index.search(&query, 1, &[0; 32]).unwrap()[0].id, 100);
            index.compact().unwrap();
            assert_eq!((index.len(), index.removed()), (live, 0));
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

    #[test]
    fn a_small_index_takes_the_memory_of_its_vectors_not_usearch_arenas() {
        // Spread-out vectors, as embeddings are (orthogonal ones all lie at one distance, which no graph
        // can navigate).
        let vector = |id: u64| -> Vec<f32> {
            (0..384u64)
                .map(|j| ((id * 384 + j) as f32 * 0.618).sin())
                .collect()
        };
        let index = SemanticIndex::new(384, 4).unwrap();
        for id in 0..FLAT_LIMIT as u64 {
            index.add(id, &vector(id), [0; 32]).unwrap();
        }
        assert!(index.read().index.is_none());
        assert!(
            index.memory_usage() < 512 * 1024,
            "{}",
            index.memory_usage()
        );
        let last = FLAT_LIMIT as u64;
        index.add(last, &vector(last), [0; 32]).unwrap();
        assert_eq!(index.len(), FLAT_LIMIT + 1);
        assert!(
            index.read().index.is_some(),
            "the graph is built past the limit"
        );
        for id in [0, 7, last] {
            let near = index.search(&vector(id), 1, &[0; 32]).unwrap();
            assert_eq!(near[0].id, id, "every entry is still found");
        }
    }
}
