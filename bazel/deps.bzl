"""strata_dependencies(): every repository strata's build needs.

A consumer's WORKSPACE is three lines:

    local_repository(name = "strata", path = "/path/to/strata")
    load("@strata//bazel:deps.bzl", "strata_dependencies")
    strata_dependencies()

Each repository is declared only if the workspace has not declared one of
that name already (as grpc and protobuf do), so a consumer can bring its own
rules_cc, googletest or Abseil; declare those before calling the macro.
Strata's own WORKSPACE uses the same macro.

Nothing is downloaded (these machines reach only Debian's package archive):
  - rules_cc, rules_java, remote_coverage_tools: tiny local stand-ins from
    strata's third_party/ that Bazel 4.2.3's own tools/cpp, tools/jdk and
    tools/test load (see third_party/).
  - platforms: Debian's copy (package bazel-platforms).
  - com_google_absl, com_google_googletest, com_github_google_benchmark,
    oneTBB, zlib, libdw: the Debian system libraries (/usr), under the
    names upstream uses, with BUILD files from third_party/system.
Every label here is absolute (Label(...) resolves it in strata's repository
whatever its name or location), so the macro works from any workspace.
"""

load("//third_party/system:system_absl.bzl", "system_absl")

def _stand_in_impl(ctx):
    # third_party/<name> is a workspace of its own inside strata's tree, not
    # a package, so its files cannot be named by a label: find it through a
    # file of the enclosing package, then link its entries in.
    third_party = ctx.path(ctx.attr._third_party_build).dirname
    source = third_party.get_child(ctx.attr.directory)
    if not source.exists:
        fail("strata: missing %s (is the strata checkout complete?)" % source)
    for entry in source.readdir():
        ctx.symlink(entry, entry.basename)

_stand_in = repository_rule(
    implementation = _stand_in_impl,
    attrs = {
        "directory": attr.string(mandatory = True),
        "_third_party_build": attr.label(default = Label("//third_party:BUILD.bazel")),
    },
    local = True,
)

# Debian's bazel-platforms package installs the @platforms repository here.
_DEBIAN_PLATFORMS = "/usr/share/bazel/tools/platforms"

# name -> BUILD file (in //third_party/system) of a Debian library under /usr.
_SYSTEM_LIBRARIES = {
    "com_google_googletest": "googletest.BUILD",
    "com_github_google_benchmark": "benchmark.BUILD",
    "oneTBB": "onetbb.BUILD",
    "zlib": "zlib.BUILD",
    # elfutils' libdw: tools/heapdump's file:line (never the allocator).
    "libdw": "libdw.BUILD",
}

def strata_dependencies():
    """Declares each repository strata needs that is not declared yet."""
    for name in ["rules_cc", "rules_java", "remote_coverage_tools"]:
        if not native.existing_rule(name):
            _stand_in(name = name, directory = name)
    if not native.existing_rule("platforms"):
        native.local_repository(name = "platforms", path = _DEBIAN_PLATFORMS)
    if not native.existing_rule("com_google_absl"):
        system_absl(name = "com_google_absl")
    for name, build_file in _SYSTEM_LIBRARIES.items():
        if not native.existing_rule(name):
            native.new_local_repository(
                name = name,
                build_file = str(Label("//third_party/system:" + build_file)),
                path = "/usr",
            )
