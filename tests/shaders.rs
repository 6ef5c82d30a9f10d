use nfnet::gpu::{Access, Kernel};

/// The shader's `@binding`s in order, as the access the pipeline layout must declare.
fn reflected_bindings(module: &naga::Module) -> Vec<(u32, Access)> {
    let mut out: Vec<(u32, Access)> = module
        .global_variables
        .iter()
        .filter_map(|(_, var)| {
            let binding = var.binding.as_ref()?;
            assert_eq!(binding.group, 0, "{:?} is not in group 0", var.name);
            let access = match var.space {
                naga::AddressSpace::Uniform => Access::Uniform,
                naga::AddressSpace::Storage { access } if access.contains(naga::StorageAccess::STORE) => Access::ReadWrite,
                naga::AddressSpace::Storage { .. } => Access::Read,
                naga::AddressSpace::Handle => match &module.types[var.ty].inner {
                    naga::TypeInner::Image {
                        class: naga::ImageClass::Storage { format, access },
                        ..
                    } => {
                        assert_eq!(*format, naga::StorageFormat::Rgba32Float, "{:?}", var.name);
                        match (
                            access.contains(naga::StorageAccess::LOAD),
                            access.contains(naga::StorageAccess::STORE),
                        ) {
                            (true, false) => Access::TextureRead,
                            (false, true) => Access::TextureWrite,
                            _ => panic!("{:?}: a texture is read or written, not both: {access:?}", var.name),
                        }
                    }
                    other => panic!("{:?}: unexpected handle type {other:?}", var.name),
                },
                other => panic!("{:?}: unexpected address space {other:?}", var.name),
            };
            Some((binding.binding, access))
        })
        .collect();
    out.sort_by_key(|(b, _)| *b);
    out
}

#[test]
fn every_shader_validates_and_matches_its_bindings() {
    let mut failures = Vec::new();
    for &kernel in Kernel::ALL {
        let module = match naga::front::wgsl::parse_str(kernel.source()) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: {}", kernel.name(), e.emit_to_string(kernel.source())));
                continue;
            }
        };
        let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all());
        if let Err(e) = validator.validate(&module) {
            failures.push(format!("{}: {}", kernel.name(), e.emit_to_string(kernel.source())));
            continue;
        }
        let entries: Vec<&str> = module.entry_points.iter().map(|e| e.name.as_str()).collect();
        if entries != [kernel.name()] {
            failures.push(format!(
                "{}: entry points {entries:?}, expected exactly [{:?}]",
                kernel.name(),
                kernel.name()
            ));
        }
        let want: Vec<(u32, Access)> = kernel.bindings().iter().enumerate().map(|(i, &a)| (i as u32, a)).collect();
        let got = reflected_bindings(&module);
        if got != want {
            failures.push(format!("{}: bindings {got:?}, Kernel::bindings() says {want:?}", kernel.name()));
        }
        // Uniform structs must be a multiple of 16 bytes.
        for (_, var) in module.global_variables.iter() {
            if var.space == naga::AddressSpace::Uniform {
                let size = module.types[var.ty].inner.size(module.to_ctx());
                if size % 16 != 0 {
                    failures.push(format!("{}: uniform Params is {size} bytes, not a multiple of 16", kernel.name()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "shader problems:\n{}", failures.join("\n\n"));
}

#[test]
fn every_shader_file_is_a_kernel() {
    // No orphaned shader files: each file in shaders/ is some Kernel's source.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    for entry in std::fs::read_dir(dir).expect("shaders/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let stem = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 name");
            assert!(
                Kernel::ALL.iter().any(|k| k.name() == stem),
                "{} is not the source of any Kernel",
                path.display()
            );
        }
    }
}
