"""strata_static_archive: one static archive from the objects of cc targets.

Bazel 4.2.3 has no cc_static_library: each cc_library gets an archive of its
own. This rule gathers the position-independent objects of every library in
the transitive closure of `deps` (those of `exclude`'s closure left out) and
writes them into one archive, for tools/install.sh.

With `relocatable = True` the objects are first combined into one relocatable
object (`ld -r`) and the archive holds just that member: a link that pulls
any symbol of it (malloc, operator new) gets all of it, constructors
included, so the archive keeps `alwayslink` semantics even when a user links
it without --whole-archive.

Only libraries built from source are taken; system libraries (linkopts such
as -lpthread) are the consumer's to name on its link line.
"""

load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

def _objects(library):
    if library.pic_objects:
        return library.pic_objects
    return library.objects or []

def _closure_objects(targets):
    seen = {}
    result = []
    for target in targets:
        for linker_input in target[CcInfo].linking_context.linker_inputs.to_list():
            for library in linker_input.libraries:
                for obj in _objects(library):
                    if obj.path not in seen:
                        seen[obj.path] = True
                        result.append(obj)
    return result

def _strata_static_archive_impl(ctx):
    excluded = {obj.path: True for obj in _closure_objects(ctx.attr.exclude)}
    objects = [obj for obj in _closure_objects(ctx.attr.deps) if obj.path not in excluded]
    if not objects:
        fail("strata_static_archive %s: no objects to archive" % ctx.label)
    toolchain = find_cpp_toolchain(ctx)
    out = ctx.actions.declare_file("lib%s.a" % ctx.attr.archive_name)
    args = ctx.actions.args()
    args.add(toolchain.ar_executable)
    args.add(toolchain.ld_executable)
    args.add("1" if ctx.attr.relocatable else "0")
    args.add(out)
    args.add_all(objects)
    ctx.actions.run_shell(
        inputs = depset(objects, transitive = [toolchain.all_files]),
        outputs = [out],
        arguments = [args],
        command = """
set -eu
ar="$1"; ld="$2"; relocatable="$3"; out="$4"; shift 4
rm -f "$out"
if [ "$relocatable" = 1 ]; then
  "$ld" -r -o "$out.o" "$@"
  "$ar" rcsD "$out" "$out.o"
  rm -f "$out.o"
else
  "$ar" rcsD "$out" "$@"
fi
""",
        mnemonic = "StrataArchive",
        progress_message = "Archiving %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]))]

strata_static_archive = rule(
    implementation = _strata_static_archive_impl,
    attrs = {
        "archive_name": attr.string(mandatory = True, doc = "the archive is lib<archive_name>.a"),
        "deps": attr.label_list(providers = [CcInfo]),
        "exclude": attr.label_list(providers = [CcInfo], doc = "objects of these closures are left out"),
        "relocatable": attr.bool(default = False),
        "_cc_toolchain": attr.label(default = Label("@bazel_tools//tools/cpp:current_cc_toolchain")),
    },
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    incompatible_use_toolchain_transition = True,
)
