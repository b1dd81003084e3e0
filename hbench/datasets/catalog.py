"""Every dataset hbench can prepare, declared once: raw files (pinned by SHA-256 where the bytes are known),
reader, default preparation and published statistics; and the lookups by name (`get_dataset`,
`list_datasets`, `dataset_names`). The types of a declaration are in `hbench.datasets.spec`.

Defaults reproduce how each dataset is used in the papers it comes from: the pre-filtered sets (S3Rec
sequences, HGCF's Amazon-CD, sisinflab's Amazon Men) are taken as published, without any further
filtering, so that prepared statistics equal the published ones.
"""

from __future__ import annotations

from hbench.datasets import formats, synthetic
from hbench.datasets.spec import DatasetSpec, PrepareOptions, RawFile
from hbench.errors import HBenchError, closest_names

# The sampled leave-one-out protocol of HyperML / NCF: last item test, second-last validation, 100 negatives.
LOO_100 = PrepareOptions(split="loo", order="temporal", negatives=100, protocol="loo")
# A shipped split evaluated by full ranking (HGCF, Elliot); no sampled candidates needed.
FIXED_FULL = PrepareOptions(split="fixed", order="random", negatives=0, protocol="full")

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
ICLREC = "https://raw.githubusercontent.com/salesforce/ICLRec/2890e6c3ff6a22c6699fc19cb863b66786c1cde4/data/"
IDEADLREC = "https://raw.githubusercontent.com/recocrea/IDEADLRec/4d920ad0221d28a33b7ef381fbce334d50c54e66/data/"
HICF = "https://raw.githubusercontent.com/marlin-codes/HICF/efe02422bef1a1a663d1cba6a1bdc23b015f3649/data/Amazon-CD/"
SISINFLAB_MEN = (
    "https://raw.githubusercontent.com/sisinflab/Edge-Graph-Collaborative-Filtering/"
    "df5eda5da42518cc5e8ec6520648e14a65c8d67f/data/amazon_men/"
)
MCAULEY_2014 = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
MCAULEY_HOMEPAGE = "https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html"
GOODBOOKS = "https://raw.githubusercontent.com/zygmuntz/goodbooks-10k/master/"
DVBPR = "http://cseweb.ucsd.edu/~wckang/DVBPR/"

MOVIELENS_CITATION = (
    "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context. ACM TiiS 5(4)."
)
MCAULEY_CITATION = (
    "Ruining He and Julian McAuley. 2016. Ups and Downs: Modeling the Visual Evolution of Fashion Trends with "
    "One-Class Collaborative Filtering. WWW; Julian McAuley et al. 2015. Image-based Recommendations on "
    "Styles and Substitutes. SIGIR."
)
S3REC_CITATION = (
    "Kun Zhou et al. 2020. S3-Rec: Self-Supervised Learning for Sequential Recommendation with Mutual "
    "Information Maximization. CIKM."
)
DVBPR_CITATION = (
    "Wang-Cheng Kang, Chen Fang, Zhaowen Wang and Julian McAuley. 2017. Visually-Aware Fashion Recommendation "
    "and Design with Generative Image Models. ICDM."
)
HGCF_CITATION = (
    "Jianing Sun et al. 2021. HGCF: Hyperbolic Graph Convolution Networks for Collaborative Filtering. WWW."
)


def _published(users: int, items: int, interactions: int) -> dict[str, int]:
    return {"users": users, "items": items, "interactions": interactions}


def _movielens(
    name: str, title: str, archive: str, member: str, sha256: str | None, reader: formats.Reader, published: dict
) -> DatasetSpec:
    """A GroupLens MovieLens archive; every rating is a positive (no threshold), sampled leave-one-out."""
    return DatasetSpec(
        name=name,
        title=title,
        raw_files=(RawFile(archive, GROUPLENS + archive, members={member: sha256}),),
        reader=reader,
        defaults=LOO_100,
        homepage="https://grouplens.org/datasets/movielens/",
        citation=MOVIELENS_CITATION,
        mirror_dirs=(name, archive.removesuffix(".zip")),
        published=published,
    )


def _sequences(
    name: str,
    title: str,
    base_url: str,
    file_name: str,
    sha256: str,
    mirror_dir: str,
    published: dict,
    *,
    dedup: bool = True,
    homepage: str = "https://github.com/RUCAIBox/CIKM2020-S3Rec",
    citation: str = S3REC_CITATION,
    notes: str = "",
) -> DatasetSpec:
    """A 5-core sequence file (`user item item ...`): taken as published (no k-core), sampled leave-one-out
    in sequence order."""
    return DatasetSpec(
        name=name,
        title=title,
        raw_files=(RawFile(file_name, base_url + file_name, sha256=sha256),),
        reader=formats.make_sequence_reader(file_name),
        defaults=PrepareOptions(split="loo", order="temporal", negatives=100, protocol="loo", dedup=dedup),
        homepage=homepage,
        citation=citation,
        mirror_dirs=(mirror_dir,),
        published=published,
        notes=notes,
    )


def _amazon2014(name: str, category: str, title: str, published: dict | None = None) -> DatasetSpec:
    """One of McAuley's 2014 5-core review files: 5-core re-applied (a no-op on an exact 5-core, but it
    keeps the core after de-duplication), sampled leave-one-out by review time."""
    file_name = f"reviews_{category}_5.json.gz"
    return DatasetSpec(
        name=name,
        title=title,
        raw_files=(RawFile(file_name, MCAULEY_2014 + file_name, size_hint="tens to hundreds of MB"),),
        reader=formats.make_amazon2014_reader(file_name),
        defaults=PrepareOptions(split="loo", order="temporal", user_k=5, item_k=5, negatives=100, protocol="loo"),
        homepage=MCAULEY_HOMEPAGE,
        citation=MCAULEY_CITATION,
        mirror_dirs=("amazon2014", name),
        published=published or {},
    )


def _dvbpr(name: str, title: str, file_name: str, size_hint: str, notes: str) -> DatasetSpec:
    """A DVBPR `.npy` with item images: its train/validation/test split kept (one validation and one test
    item per user), no k-core, DVBPR's AUC over all items, with 100 sampled negatives stored for the sampled
    AUC as well. Unpinned: the hash is recorded on first download."""
    return DatasetSpec(
        name=name,
        title=title,
        raw_files=(RawFile(file_name, DVBPR + file_name, size_hint=size_hint),),
        reader=formats.make_dvbpr_reader(file_name),
        defaults=PrepareOptions(split="fixed", order="random", negatives=100, protocol="auc"),
        homepage="https://github.com/kang205/DVBPR",
        citation=DVBPR_CITATION,
        mirror_dirs=(name, "dvbpr"),
        notes=notes + " Preparing needs about as much free memory as the file is large (it is one pickle).",
    )


_SPECS: tuple[DatasetSpec, ...] = (
    _movielens(
        "movielens-100k",
        "MovieLens 100K",
        "ml-100k.zip",
        "ml-100k/u.data",
        "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        formats.read_movielens_100k,
        _published(943, 1682, 100_000),
    ),
    _movielens(
        "movielens-1m",
        "MovieLens 1M",
        "ml-1m.zip",
        "ml-1m/ratings.dat",
        None,
        formats.read_movielens_1m,
        _published(6040, 3706, 1_000_209),
    ),
    _movielens(
        "movielens-20m",
        "MovieLens 20M",
        "ml-20m.zip",
        "ml-20m/ratings.csv",
        None,
        formats.read_movielens_20m,
        _published(138_493, 26_744, 20_000_263),
    ),
    DatasetSpec(
        name="amazon-cd",
        title="Amazon CDs & Vinyl (HGCF split)",
        raw_files=tuple(
            RawFile(file_name, HICF + file_name, sha256=sha256)
            for file_name, sha256 in (
                ("train.pkl", "fdd3250d51e1dfe1713d8749b842aa343a0c42d39dce7bc4ca21c76fbdbe6e8b"),
                ("test.pkl", "8511b464bc7319d0abddf502cc0a75880557b1e9c9004de062070b61fdc5e34e"),
                ("user_item_list.pkl", "f1df1cde578b1b3f77134333c99e9a274965618efec02d529cc9b491f4e03772"),
            )
        ),
        reader=formats.read_hgcf_pickles,
        defaults=FIXED_FULL,
        homepage="https://github.com/layer6ai-labs/HGCF",
        citation=HGCF_CITATION,
        mirror_dirs=("amazon-cd-hgcf",),
        published=_published(22_947, 18_395, 422_301),
        notes="HGCF's train/test split; validation = one random training item per user (seeded).",
    ),
    _sequences(
        "amazon-sports",
        "Amazon Sports & Outdoors 5-core (S3Rec)",
        ICLREC,
        "Sports_and_Outdoors.txt",
        "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
        "amazon-5core-s3rec",
        _published(35_598, 18_357, 296_337),
    ),
    _sequences(
        "amazon-beauty",
        "Amazon Beauty 5-core (S3Rec)",
        ICLREC,
        "Beauty.txt",
        "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
        "amazon-5core-s3rec",
        _published(22_363, 12_101, 198_502),
    ),
    _sequences(
        "amazon-toys",
        "Amazon Toys & Games 5-core (S3Rec)",
        ICLREC,
        "Toys_and_Games.txt",
        "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f",
        "amazon-5core-s3rec",
        _published(19_412, 11_924, 167_597),
    ),
    _sequences(
        "yelp",
        "Yelp (S3Rec)",
        ICLREC,
        "Yelp.txt",
        "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed",
        "amazon-5core-s3rec",
        _published(30_431, 20_033, 316_354),
        # The published count includes 11,830 repeat visits (same user, same business) by 7,102 users;
        # S3Rec keeps them in the sequences, so de-duplication is off to reproduce the published numbers.
        dedup=False,
        notes="Sequences contain repeat visits; kept by default (dedup=false) as S3Rec does.",
    ),
    _sequences(
        "amazon-clothing",
        "Amazon Clothing, Shoes & Jewelry 5-core (2014)",
        IDEADLREC,
        "Clothing.txt",
        "9f5051aa601de52a922e6ff51fe879960ff3bf48559d81110478f0f5cc63561e",
        "amazon-clothing-5core",
        _published(39_387, 23_033, 278_677),
        homepage=MCAULEY_HOMEPAGE,
        citation=MCAULEY_CITATION,
    ),
    DatasetSpec(
        name="amazon-men-2018",
        title="Amazon Clothing/Men 2018 (sisinflab split)",
        raw_files=tuple(
            RawFile(file_name, SISINFLAB_MEN + file_name, sha256=sha256)
            for file_name, sha256 in (
                ("trainingset.tsv", "c7fcb51c072f8c6c853e66ef64768d975be670b4eb55a84cde077984e0b519c7"),
                ("validationset.tsv", "80a9b7dad83380f1777d81deabb9b6deef5db8f0f8740a3506758c2ae48e374b"),
                ("testset.tsv", "35eb5136549a4ecb2b54f0ee7d14a143ed0f59b1dca6e0a9889a30c19442db24"),
            )
        ),
        reader=formats.make_sisinflab_reader("trainingset.tsv", "validationset.tsv", "testset.tsv"),
        defaults=FIXED_FULL,
        homepage="https://github.com/sisinflab/Edge-Graph-Collaborative-Filtering",
        citation=(
            "Split: sisinflab/Edge-Graph-Collaborative-Filtering, data/amazon_men. Source: Jianmo Ni, Jiacheng Li "
            "and Julian McAuley. 2019. Justifying Recommendations using Distantly-Labeled Reviews and "
            "Fine-Grained Aspects. EMNLP."
        ),
        mirror_dirs=("amazon-men-2018", "amazon_men"),
        published=_published(3218, 7605, 60_299),
        notes="Shipped train/validation/test; one user has the same item in all three parts (kept as shipped).",
    ),
    _dvbpr(
        "amazon-men",
        "Amazon Men with item images (DVBPR)",
        "AmazonMenWithImgPartitioned.npy",
        "2.1 GB",
        "2.1 GB download; about 34K users, 110K items, 0.25M interactions, one JPEG per item.",
    ),
    _dvbpr(
        "amazon-women",
        "Amazon Women with item images (DVBPR)",
        "AmazonWomenWithImgPartitioned.npy",
        "6.2 GB",
        "6.2 GB download; about 97K users, 347K items, 0.83M interactions, one JPEG per item.",
    ),
    _dvbpr(
        "amazon-fashion",
        "Amazon Fashion with item images (DVBPR)",
        "AmazonFashion6ImgPartitioned.npy",
        "several GB",
        "Several GB download; one JPEG per item.",
    ),
    _dvbpr(
        "tradesy",
        "Tradesy with item images (DVBPR)",
        "TradesyImgPartitioned.npy",
        "several GB",
        "Several GB download; one JPEG per item.",
    ),
    _amazon2014(
        "amazon2014-clothing",
        "Clothing_Shoes_and_Jewelry",
        "Amazon 2014 Clothing, Shoes & Jewelry 5-core",
        _published(39_387, 23_033, 278_677),
    ),
    _amazon2014(
        "amazon2014-sports",
        "Sports_and_Outdoors",
        "Amazon 2014 Sports & Outdoors 5-core",
        _published(35_598, 18_357, 296_337),
    ),
    _amazon2014(
        "amazon2014-cellphones",
        "Cell_Phones_and_Accessories",
        "Amazon 2014 Cell Phones & Accessories 5-core",
        _published(27_879, 10_429, 194_439),
    ),
    _amazon2014("amazon2014-videogames", "Video_Games", "Amazon 2014 Video Games 5-core"),
    _amazon2014(
        "amazon2014-automotive", "Automotive", "Amazon 2014 Automotive 5-core", _published(2928, 1835, 20_473)
    ),
    _amazon2014("amazon2014-toys", "Toys_and_Games", "Amazon 2014 Toys & Games 5-core"),
    DatasetSpec(
        name="goodbooks-10k",
        title="goodbooks-10k",
        raw_files=(RawFile("ratings.csv", GOODBOOKS + "ratings.csv", size_hint="69 MB"),),
        reader=formats.read_goodbooks,
        defaults=LOO_100,
        homepage="https://github.com/zygmuntz/goodbooks-10k",
        citation="Zygmunt Zając. 2017. Goodbooks-10k: a new dataset for book recommendations. FastML.",
        mirror_dirs=("goodbooks-10k",),
        published=_published(53_424, 10_000, 5_976_479),
        notes="No timestamps: the file order is the time order.",
    ),
    DatasetSpec(
        name="synthetic-fashion",
        title="Synthetic fashion hierarchy (generated, not real data)",
        raw_files=(),
        reader=synthetic.read_synthetic,
        defaults=LOO_100,
        notes="Generated from a fixed seed: category > sub-category > item, Zipf popularity; for the demo.",
    ),
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}


def get_dataset(name: str) -> DatasetSpec:
    if name not in DATASETS:
        guesses = closest_names(name, DATASETS)
        hint = f"did you mean {' or '.join(guesses)}? " if guesses else ""
        raise HBenchError(f"unknown dataset {name!r}; {hint}known: {', '.join(sorted(DATASETS))} (see `hbench datasets`)")
    return DATASETS[name]


def list_datasets() -> list[DatasetSpec]:
    return [spec for _, spec in sorted(DATASETS.items())]


def dataset_names() -> set[str]:
    """The names of the registered datasets (a custom dataset may not take one)."""
    return set(DATASETS)
