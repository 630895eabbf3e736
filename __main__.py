"""image-gallery: a gallery, its image definitions, the publisher's role, and versions captured from VMs or
promoted from another stack's versions."""

import gc

import pulumi

import config
from components.captured_image_version import CapturedImageVersion, CapturedImageVersionArgs
from components.generalization_hosts import GeneralizationHosts
from components.image_gallery import ImageGallery, ImageGalleryArgs
from components.promoted_image_version import PromotedImageVersion, PromotedImageVersionArgs, SourceStacks
from components.publishing import partner_center_outputs
from hooks.errors import ConfigError

# A short-lived process that keeps nearly everything it allocates (Outputs, futures: ~85 per resource) until it
# exits, so the cyclic GC finds almost nothing to free: with it disabled, the peak memory of a 60-version plan
# grows by 3 MB (105 to 108) and of a 300-version plan by 20 MB (253 to 273), while its scans cost 7% and 15% of
# the CPU (0.2 s and 1.5 s; with CPython's default thresholds, 40%). Between registrations the process only waits
# for the engine. Reference counting still frees everything without cycles (make bench).
gc.disable()

try:
    stack = config.from_pulumi()
except ConfigError as exc:
    # A clear list of every problem, no traceback.
    raise SystemExit(str(exc)) from None

gallery = ImageGallery(
    stack.gallery.name, ImageGalleryArgs(stack.gallery, stack.images, stack.publisher, azure=stack.azure)
)
# A chain per captured version; a promoted version needs a host only for its test boot (validate: true).
chains = [
    f"{d.name}-{v.version}"
    for d in stack.images
    for v in d.versions
    if v.source_vm is not None or d.test_boot is not None
]
hosts = GeneralizationHosts(chains, stack.azure.parallel_hosts, login=config.login_from_pulumi())
source_stacks = SourceStacks()
version_ids: dict[str, pulumi.Output[str]] = {}
for d_index, definition in enumerate(stack.images):
    for v_index, version in enumerate(definition.versions):
        name = f"{definition.name}-{version.version}"
        definition_path, version_path = f"images[{d_index}]", f"images[{d_index}].versions[{v_index}]"
        made: CapturedImageVersion | PromotedImageVersion
        if version.source_version is not None:
            made = PromotedImageVersion(
                name,
                PromotedImageVersionArgs(
                    version=version,
                    definition=definition,
                    gallery=stack.gallery,
                    azure=stack.azure,
                    gallery_image=gallery.definitions[definition.name],
                    source_stacks=source_stacks,
                    gallery_id=gallery.gallery.id,
                    definition_path=definition_path,
                    version_path=version_path,
                    host=hosts.for_chain(name) if definition.test_boot is not None else None,
                ),
            )
        else:
            made = CapturedImageVersion(
                name,
                CapturedImageVersionArgs(
                    version=version,
                    definition=definition,
                    gallery=stack.gallery,
                    azure=stack.azure,
                    gallery_image=gallery.definitions[definition.name],
                    gallery_id=gallery.gallery.id,
                    publisher_tenant_id=stack.publisher.tenant_id if stack.publisher else None,
                    host=hosts.for_chain(name),
                    definition_path=definition_path,
                    version_path=version_path,
                ),
            )
        # Promoted versions are exported like captured ones, so a further stage can promote them again.
        version_ids[f"{definition.name}/{version.version}"] = made.image_version.id

pulumi.export("galleryId", gallery.gallery.id)
pulumi.export("definitionIds", {name: d.id for name, d in gallery.definitions.items()})
pulumi.export("versionIds", version_ids)
# What a Marketplace plan's technical configuration asks for (docs/partner-center.md).
pulumi.export("partnerCenter", partner_center_outputs(stack, version_ids))
