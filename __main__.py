"""image-gallery: a gallery, its image definitions, the publisher's role, and versions captured from VMs."""

import pulumi

import config
from components.captured_image_version import CapturedImageVersion, CapturedImageVersionArgs
from components.generalization_hosts import GeneralizationHosts
from components.image_gallery import ImageGallery, ImageGalleryArgs
from hooks.errors import ConfigError

try:
    stack = config.from_pulumi()
except ConfigError as exc:
    # A clear list of every problem, no traceback.
    raise SystemExit(str(exc)) from None

gallery = ImageGallery(stack.gallery.name, ImageGalleryArgs(stack.gallery, stack.images, stack.publisher))
chains = [f"{d.name}-{v.version}" for d in stack.images for v in d.versions]
hosts = GeneralizationHosts(chains, stack.azure.parallel_hosts)
version_ids: dict[str, pulumi.Output[str]] = {}
for d_index, definition in enumerate(stack.images):
    for v_index, version in enumerate(definition.versions):
        chain = f"{definition.name}-{version.version}"
        captured = CapturedImageVersion(
            chain,
            CapturedImageVersionArgs(
                version=version,
                definition=definition,
                gallery=stack.gallery,
                azure=stack.azure,
                gallery_image=gallery.definitions[definition.name],
                gallery_id=gallery.gallery.id,
                definition_path=f"images[{d_index}]",
                version_path=f"images[{d_index}].versions[{v_index}]",
                publisher_tenant_id=stack.publisher.tenant_id if stack.publisher else None,
                host=hosts.for_chain(chain),
            ),
        )
        version_ids[f"{definition.name}/{version.version}"] = captured.image_version.id

pulumi.export("galleryId", gallery.gallery.id)
pulumi.export("definitionIds", {name: d.id for name, d in gallery.definitions.items()})
pulumi.export("versionIds", version_ids)
